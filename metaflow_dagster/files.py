"""Writing files that another process may read at any moment."""

import os
import tempfile


def write_atomically(path: str, text: str) -> None:
    """Write the whole of `text` to `path` or nothing: a reader sees the old file
    or the new one, never a half-written one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
