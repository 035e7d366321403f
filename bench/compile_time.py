"""Compile time of `python flow.py dagster create` for a generated N-step flow
(target: 50 steps under 3 s), and how much of it is imports.

    python bench/compile_time.py               # 50-step linear flow, 3 runs
    python bench/compile_time.py --steps 200 --runs 5
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import base_env  # noqa: E402


def make_flow(steps: int) -> str:
    """start -> s1 ... -> a 4-way branch -> join -> ... -> end: `steps` steps in all."""
    names = ["start"] + ["s%d" % i for i in range(1, steps - 1)] + ["end"]
    lines = ["from metaflow import FlowSpec, step", "", "", "class Steps%dFlow(FlowSpec):" % steps]
    for i, name in enumerate(names):
        lines += ["    @step", "    def %s(self):" % name]
        if name != "end":
            lines.append("        self.next(self.%s)" % names[i + 1])
        else:
            lines.append("        pass")
        lines.append("")
    lines += ["", "if __name__ == \"__main__\":", "    Steps%dFlow()" % steps, ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="mfdcompile-")
    flow = os.path.join(work, "steps_flow.py")
    with open(flow, "w") as f:
        f.write(make_flow(args.steps))
    env = base_env()
    times = []
    for _ in range(args.runs):
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        subprocess.run([sys.executable, flow, "dagster", "create", "out.py"], cwd=work, env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.monotonic() - t0)
        print("create: %.2f s (load %.1f)" % (times[-1], load))
    imports = {}
    for mod in ("metaflow", "dagster"):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import %s" % mod], env=env, check=True)
        imports[mod] = time.monotonic() - t0
    t0 = time.monotonic()
    subprocess.run([sys.executable, flow, "--help"], cwd=work, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bare = time.monotonic() - t0
    size = os.path.getsize(os.path.join(work, "out.py"))
    print("%d steps: create median %.2f s (min %.2f, max %.2f); `flow.py --help` %.2f s; "
          "python -c 'import metaflow' %.2f s, 'import dagster' %.2f s; output %d bytes; "
          "load now %.1f" % (args.steps, statistics.median(times), min(times), max(times), bare,
                             imports["metaflow"], imports["dagster"], size, os.getloadavg()[0]))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
