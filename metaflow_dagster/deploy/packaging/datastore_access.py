"""What `dagster create` says when it cannot write to the flow's datastore (where the
production token's record and the code package go): which datastore, and what to do,
in one message instead of the storage's traceback."""

from contextlib import contextmanager

from ..errors import CommandError


def _write_errors() -> tuple:
    """What Metaflow's local and S3 storages raise on a write they cannot make."""
    from metaflow.plugins.datatools.s3.s3 import (
        MetaflowS3AccessDenied,
        MetaflowS3Exception,
        MetaflowS3NotFound,
    )

    return OSError, MetaflowS3AccessDenied, MetaflowS3NotFound, MetaflowS3Exception


@contextmanager
def datastore_writes(flow_datastore):
    """Turn a failed write to `flow_datastore` into a CommandError that names it."""
    try:
        yield
    except _write_errors() as error:
        raise CommandError(unwritable_message(
            flow_datastore.TYPE, flow_datastore.datastore_root, error)) from None


def unwritable_message(datastore_type: str, root: str, error: Exception) -> str:
    setting = "METAFLOW_DATASTORE_SYSROOT_%s" % datastore_type.upper()
    if datastore_type == "local":
        what = "the directory %s" % root
        fix = "make it writable, or point %s at a directory you can write to" % setting
    elif datastore_type == "s3":
        what = "the S3 location %s" % root
        fix = ("check that the bucket exists and that your AWS credentials may write to it, "
               "or point %s at a bucket you can write to" % setting)
    else:
        what = "%s" % root
        fix = "check that you may write there, or point %s elsewhere" % setting
    reason = " ".join(str(error).split())
    return ("Cannot write to the flow's %s datastore, %s (%s): %s. Nothing was written; "
            "`dagster create` keeps the deployment's record and the flow's code package "
            "there." % (datastore_type, what, reason, fix))
