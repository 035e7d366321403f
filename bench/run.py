"""Benchmark: the same flows under Metaflow's local runtime and as our compiled
Dagster job, as real subprocesses (SQLite Dagster instance, local datastore).

    python bench/run.py                      # all flows, 3 runs each, prints a table
    python bench/run.py --quick              # 1 run of linear6 and foreach20
    python bench/run.py --flows foreach100 --runs 5
    python bench/run.py --variants metaflow,dagster,multiprocess   # also the stock executor

Each run gets a fresh temp directory holding a copy of the flow (so a fresh
.metaflow datastore) and a fresh DAGSTER_HOME. A flow's runs are taken together,
after the machine's load has settled; variants alternate within each round and
their order flips every round, so slow drifts of the load hit them alike. Compile
time (`dagster create`) is measured apart and not part of the Dagster wall time;
the instance's storage is created and the job's code package unpacked on this host
before the clock starts, as for every run of a deployment but its first here
(--cold-instance, --cold-package count them).
Raw results go to bench/results/<time>.json.
"""

import argparse
import glob
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from measure import become_subreaper, measure, median_range  # noqa: E402
from variants import VARIANTS  # noqa: E402


@dataclass(frozen=True)
class BenchFlow:
    file: str  # in bench/flows/
    name: str  # the flow class, and so the Dagster job's name
    tasks: int  # Metaflow tasks of one run
    parameters: Dict[str, int] = field(default_factory=dict)

    def metaflow_command(self) -> List[str]:
        """`python flow.py run`, with the flow's parameter values (and room for more
        than Metaflow's default of 100 foreach splits)."""
        return [sys.executable, self.file, "run", "--max-num-splits", str(max(100, self.tasks))] + [
            arg for k, v in self.parameters.items() for arg in ("--%s" % k, str(v))]

    def dagster_command(self, workdir: str) -> List[str]:
        """`dagster job execute` of the compiled job (job_dagster.py in workdir), with
        the same values as the start op's run config."""
        argv = ["dagster", "job", "execute", "-f", "job_dagster.py", "-j", self.name]
        if self.parameters:
            path = os.path.join(workdir, "run_config.yaml")
            with open(path, "w") as f:  # JSON is YAML
                json.dump({"ops": {"start": {"config": self.parameters}}}, f)
            argv += ["-c", path]
        return argv


FLOWS = {
    "linear6": BenchFlow("linear6.py", "Linear6Flow", 6),
    "branch4": BenchFlow("branch4.py", "Branch4Flow", 7),
    "foreach20": BenchFlow("foreach.py", "ForeachFlow", 23, {"width": 20}),
    "foreach100": BenchFlow("foreach.py", "ForeachFlow", 103, {"width": 100}),
    "nested10x10": BenchFlow("nested10x10.py", "Nested10x10Flow", 123),
    "foreach1000": BenchFlow("foreach.py", "ForeachFlow", 1003, {"width": 1000}),
}
COLD_INSTANCE = False  # --cold-instance: count the creation of DAGSTER_HOME's storage too
COLD_PACKAGE = False  # --cold-package: count unpacking the job's code package on this host
# A deployment's first run on a host fetches and unpacks its code package (~0.7 s here,
# once; runtime/launch/code_package.py); every later run finds it unpacked.
WARM_PACKAGE = ("import runpy; "
                "from metaflow_dagster.runtime.launch.code_package import code_package; "
                "code_package(runpy.run_path('job_dagster.py')['FLOW'].plan)")
DEFAULT_FLOWS = ["linear6", "branch4", "foreach20", "foreach100", "nested10x10"]
QUICK_FLOWS = ["linear6", "foreach20"]
SETTLE_MAX_SECONDS = 180


def base_env():
    env = dict(os.environ)
    env.setdefault("METAFLOW_USER", "bench")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # the venv's scripts (dagster) first
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def run_once(flow: str, variant_name: str, keep: bool):
    bench_flow = FLOWS[flow]
    file = bench_flow.file
    variant = VARIANTS[variant_name]
    workdir = tempfile.mkdtemp(prefix="mfdbench-%s-%s-" % (flow, variant_name))
    shutil.copy(os.path.join(HERE, "flows", file), workdir)
    env = base_env()
    env.update(variant.env)
    record = {"flow": flow, "variant": variant_name, "tasks": bench_flow.tasks}
    try:
        if variant.kind == "metaflow":
            m = measure(bench_flow.metaflow_command() + variant.run_args, workdir, env,
                        os.path.join(workdir, "run.log"))
            ok = m.returncode == 0
        else:
            home = os.path.join(workdir, "dagster_home")
            os.makedirs(home)
            with open(os.path.join(home, "dagster.yaml"), "w") as f:
                f.write("telemetry:\n  enabled: false\n")
            env["DAGSTER_HOME"] = home
            if not COLD_INSTANCE:
                # A user's instance exists already: create its SQLite storage (schema,
                # migrations: ~3-5 s here) before the clock starts. The run's own event
                # DB is still created inside the measured run, as it is for every run.
                subprocess.run([sys.executable, "-c", "from dagster import DagsterInstance; "
                                "DagsterInstance.get().get_runs(limit=1)"],
                               env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            compiled = measure([sys.executable, file, "dagster", "create", "job_dagster.py"]
                               + variant.create_args, workdir, env,
                               os.path.join(workdir, "create.log"))
            if compiled.returncode != 0:
                record.update(ok=False, wall=0.0, cpu=0.0, rss_mb=0.0, pss_mb=0.0, procs=0,
                              load_before=compiled.load_before,
                              load_after=compiled.load_after, error="dagster create failed",
                              workdir=workdir)
                keep = True
                return record
            record["compile_s"] = compiled.wall
            if not COLD_PACKAGE:
                subprocess.run([sys.executable, "-c", WARM_PACKAGE], cwd=workdir, env=env,
                               check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            m = measure(bench_flow.dagster_command(workdir) + variant.run_args, workdir, env,
                        os.path.join(workdir, "run.log"))
            with open(os.path.join(workdir, "run.log"), errors="replace") as f:
                ok = m.returncode == 0 and "RUN_SUCCESS" in f.read()
            record.update(event_log_stats(home))
        record.update(ok=ok, wall=m.wall, cpu=m.cpu, rss_mb=m.peak_rss_mb,
                      pss_mb=m.peak_pss_mb, procs=m.peak_procs,
                      load_before=m.load_before, load_after=m.load_after)
        if not ok:
            record["workdir"] = workdir
            keep = True
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            record["workdir"] = workdir
    return record


def event_log_stats(home):
    dbs = [p for p in glob.glob(os.path.join(home, "history", "runs", "*.db"))
           if not p.endswith("index.db")]
    if not dbs:
        return {}
    size = sum(os.path.getsize(p) for p in dbs)
    events = 0
    for p in dbs:
        with sqlite3.connect(p) as conn:
            events += conn.execute("select count(*) from event_logs").fetchone()[0]
    return {"event_db_mb": size / 1e6, "events": events}


def summarize(records, variants, baseline="metaflow"):
    rows = []
    by = {}
    for r in records:
        if r["ok"]:
            by.setdefault((r["flow"], r["variant"]), []).append(r)
    flows = []
    for r in records:
        if r["flow"] not in flows:
            flows.append(r["flow"])
    for flow in flows:
        base = by.get((flow, baseline))
        base_wall = statistics.median(r["wall"] for r in base) if base else None
        for variant in variants:
            rs = by.get((flow, variant))
            failed = sum(1 for r in records
                         if r["flow"] == flow and r["variant"] == variant and not r["ok"])
            if not rs:
                rows.append([flow, str(FLOWS[flow].tasks), variant, "FAILED x%d" % failed]
                            + [""] * 7)
                continue
            wall = [r["wall"] for r in rs]
            med = statistics.median(wall)
            tasks = FLOWS[flow].tasks
            over = "" if base_wall is None or variant == baseline else \
                "%+.2f" % ((med - base_wall) / tasks)
            ratio = "" if base_wall is None or variant == baseline else \
                "**%.2fx**" % (med / base_wall)
            compile_s = [r["compile_s"] for r in rs if "compile_s" in r]
            loads = [r["load_before"] for r in rs] + [r["load_after"] for r in rs]
            rows.append([
                flow, str(tasks), variant + ("" if not failed else " (%d failed)" % failed),
                median_range(wall, "%.1f"), median_range([r["cpu"] for r in rs], "%.1f"),
                "%s / %.0f" % (median_range([r["rss_mb"] for r in rs], "%.0f"),
                               statistics.median(r["pss_mb"] for r in rs)),
                "%.2f" % (med / tasks), over, ratio,
                "%.2f" % statistics.median(compile_s) if compile_s else "",
                "%.1f-%.1f" % (min(loads), max(loads)),
            ])
    header = ["flow", "tasks", "variant", "wall s, median (min-max)",
              "CPU s (tree)", "peak RSS MB (tree) / PSS", "wall s / task",
              "overhead s / task vs %s" % baseline, "wall / %s" % baseline, "compile s",
              "load 1-min"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each flow and variant")
    parser.add_argument("--flows", default=None,
                        help="comma-separated subset of: %s" % ", ".join(FLOWS))
    parser.add_argument("--variants", default="metaflow,dagster",
                        help="comma-separated subset of: %s" % ", ".join(VARIANTS))
    parser.add_argument("--baseline", default=None,
                        help="variant the ratios are relative to (default: the first "
                        "Metaflow variant listed)")
    parser.add_argument("--quick", action="store_true",
                        help="1 run of %s" % " and ".join(QUICK_FLOWS))
    parser.add_argument("--keep", action="store_true", help="keep the temp directories")
    parser.add_argument("--cold-instance", action="store_true",
                        help="also time creating the fresh DAGSTER_HOME's storage")
    parser.add_argument("--cold-package", action="store_true",
                        help="also time unpacking the job's code package (a deployment's "
                        "first run on a host)")
    parser.add_argument("--settle-load", type=float, default=1.0,
                        help="before each flow, wait (at most %d s) for the 1-minute load "
                        "average to drop below this" % SETTLE_MAX_SECONDS)
    parser.add_argument("--out", default=os.path.join(HERE, "results"),
                        help="directory for the raw JSON results")
    args = parser.parse_args(argv)
    global COLD_INSTANCE, COLD_PACKAGE
    COLD_INSTANCE = args.cold_instance
    COLD_PACKAGE = args.cold_package
    flows = args.flows.split(",") if args.flows else (QUICK_FLOWS if args.quick else DEFAULT_FLOWS)
    runs = 1 if args.quick and args.runs == 3 else args.runs
    variants = args.variants.split(",")
    for name in flows + variants:
        if name not in FLOWS and name not in VARIANTS:
            parser.error("unknown flow or variant %r" % name)
    if not become_subreaper():
        print("warning: could not become a child subreaper; CPU time of daemonised "
              "processes (Dagster's forkserver) will be missing", file=sys.stderr)

    records = []
    started = time.strftime("%Y%m%d-%H%M%S")
    # All runs of a flow together: the load a wide foreach leaves behind (16 task
    # processes on 2 cores) must not fall on a short flow's next run.
    for flow in flows:
        wait_for_quiet(args.settle_load, SETTLE_MAX_SECONDS)
        for i in range(runs):
            order = variants if i % 2 == 0 else list(reversed(variants))
            for variant in order:
                r = run_once(flow, variant, args.keep)
                records.append(r)
                print("run %d/%d %-12s %-10s %s wall=%.1fs cpu=%.1fs rss=%.0fMB load=%.1f->%.1f%s"
                      % (i + 1, runs, flow, variant, "ok " if r["ok"] else "FAILED",
                         r["wall"], r["cpu"], r["rss_mb"], r["load_before"], r["load_after"],
                         "" if r["ok"] else " (kept %s)" % r.get("workdir")),
                      file=sys.stderr, flush=True)
    os.makedirs(args.out, exist_ok=True)
    machine = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "mem_gb": _mem_gb(),
    }
    path = os.path.join(args.out, "%s.json" % started)
    with open(path, "w") as f:
        json.dump({"machine": machine, "records": records}, f, indent=1)
    print("Machine: %(cpus)d CPUs (%(cpu_model)s), %(mem_gb).0f GB RAM, Python %(python)s, "
          "%(platform)s" % machine)
    print("Runs per cell: %d. Dagster instance: %s. Code package: %s. Raw results: %s\n"
          % (runs, "created inside the timed run" if COLD_INSTANCE else
             "fresh, storage created before the clock starts",
             "unpacked inside the timed run" if COLD_PACKAGE else
             "unpacked on this host before the clock starts", os.path.relpath(path)))
    baseline = args.baseline or next(
        (v for v in variants if VARIANTS[v].kind == "metaflow"), variants[0])
    print(summarize(records, variants, baseline))
    print()
    for name in variants:
        print("- `%s`: %s" % (name, VARIANTS[name].description))


def wait_for_quiet(threshold: float, max_seconds: float) -> None:
    deadline = time.monotonic() + max_seconds
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        time.sleep(5)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _mem_gb():
    with open("/proc/meminfo") as f:
        return int(f.readline().split()[1]) / 1024 / 1024


if __name__ == "__main__":
    main()
