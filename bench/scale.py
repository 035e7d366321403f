"""Width: a foreach of N trivial tasks (bench/flows/foreach.py) as the compiled job on the
embedded default (SQLite) and on PostgreSQL, against `python flow.py run`, with the same cap on
parallel tasks on both sides.

    python bench/scale.py                                  # foreach 10,000, all three variants
    python bench/scale.py --widths 500,1000,2000 --variants dagster-sqlite --max-workers 16
    python bench/scale.py --widths 1000 --variants dagster-postgres --runs 3

Variants:
- metaflow: `python flow.py run --width N --max-num-splits N --max-workers W`;
- dagster-sqlite: `dagster job execute` of the job compiled with `dagster create --max-workers W`,
  run config `execution: {config: {metaflow: {max_concurrent: W, max_tasks: W}}}` (steps at once,
  Metaflow task processes at once), a fresh DAGSTER_HOME with the default (SQLite) storage;
- dagster-postgres: the same with a DAGSTER_HOME whose dagster.yaml keeps everything in a
  PostgreSQL this benchmark starts on 127.0.0.1 (tests/services.py) and stops by its pid.

Measured as bench/run.py does (bench/measure.py): wall, CPU of the whole process tree, peak PSS
of the tree (PostgreSQL's server is not in the tree: its own peak RSS is printed apart). After
each Dagster run, its event-log rows are counted by type (the instance's `event_logs` table).
Timing is only meaningful on a quiet machine: the load average is recorded with every run.
Raw results go to bench/results/scale-<time>.json.
"""

import argparse
import contextlib
import glob
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from measure import become_subreaper, measure, median_range  # noqa: E402
from run import WARM_PACKAGE, _cpu_model, _mem_gb, base_env  # noqa: E402

FLOW = "foreach.py"
JOB = "ForeachFlow"
VARIANTS = ("metaflow", "dagster-sqlite", "dagster-postgres")
TELEMETRY_OFF = "telemetry:\n  enabled: false\n"


def metaflow_argv(width: int, workers: int):
    return [sys.executable, FLOW, "run", "--width", str(width),
            "--max-num-splits", str(max(100, width)), "--max-workers", str(workers)]


def dagster_argv(workdir: Path, width: int, workers: int):
    config = {"ops": {"start": {"config": {"width": width}}},
              "execution": {"config": {"metaflow": {"max_concurrent": workers,
                                                    "max_tasks": workers}}}}
    path = workdir / "run_config.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return ["dagster", "job", "execute", "-f", "job_dagster.py", "-j", JOB, "-c", str(path)]


def prepare_home(home: Path, dagster_yaml: str, env: dict) -> None:
    """The instance exists before the clock starts, as a user's does."""
    home.mkdir()
    (home / "dagster.yaml").write_text(dagster_yaml)
    out = subprocess.run([sys.executable, "-c", "from dagster import DagsterInstance; "
                          "DagsterInstance.get().get_runs(limit=1)"],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("could not create the instance at %s:\n%s" % (home, out.stderr))


def last_run_id_sqlite(home: Path) -> str:
    with contextlib.closing(sqlite3.connect(str(home / "history" / "runs.db"))) as conn:
        return conn.execute("select run_id from runs order by id desc limit 1").fetchone()[0]


def _postgres(pg):
    import psycopg2

    return contextlib.closing(psycopg2.connect(host=pg.host, port=pg.port, user=pg.user,
                                               password=pg.password, dbname=pg.dbname))


def last_run_id_postgres(pg) -> str:
    with _postgres(pg) as conn, conn.cursor() as cur:
        cur.execute("select run_id from runs order by id desc limit 1")
        return cur.fetchone()[0]


def event_counts_sqlite(home: Path, run_id: str):
    counts = {}
    for path in glob.glob(str(home / "history" / "runs" / ("%s.db" % run_id))):
        with contextlib.closing(sqlite3.connect(path)) as conn:
            for kind, n in conn.execute("select coalesce(dagster_event_type, 'log message'), "
                                        "count(*) from event_logs group by 1"):
                counts[kind] = n
    return counts


def event_counts_postgres(pg, run_id: str):
    with _postgres(pg) as conn:
        with conn.cursor() as cur:
            cur.execute("select coalesce(dagster_event_type, 'log message'), count(*) "
                        "from event_logs where run_id = %s group by 1", (run_id,))
            return dict(cur.fetchall())


def run_once(variant: str, width: int, workers: int, pg, servers, keep: bool) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="mfd-scale-%s-%d-" % (variant, width)))
    shutil.copy(HERE / "flows" / FLOW, workdir)
    (workdir / ".metaflow").mkdir()  # the run's own datastore, whatever is above workdir
    env = base_env()
    record = {"variant": variant, "width": width, "tasks": width + 3, "max_workers": workers}
    try:
        if variant == "metaflow":
            m = measure(metaflow_argv(width, workers), str(workdir), env,
                        str(workdir / "run.log"), servers)
            ok = m.returncode == 0
        else:
            home = workdir / "dagster_home"
            env["DAGSTER_HOME"] = str(home)
            if variant == "dagster-postgres":
                import services

                prepare_home(home, services.dagster_yaml_for_postgres(pg), env)
            else:
                prepare_home(home, TELEMETRY_OFF, env)
            subprocess.run([sys.executable, FLOW, "dagster", "create", "job_dagster.py",
                            "--max-workers", str(workers)], cwd=workdir, env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run([sys.executable, "-c", WARM_PACKAGE], cwd=workdir, env=env,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            m = measure(dagster_argv(workdir, width, workers), str(workdir), env,
                        str(workdir / "run.log"), servers)
            log = (workdir / "run.log").read_text(errors="replace")
            ok = m.returncode == 0 and "RUN_SUCCESS" in log
            if variant == "dagster-postgres":
                run_id = last_run_id_postgres(pg)
                counts = event_counts_postgres(pg, run_id)
            else:
                run_id = last_run_id_sqlite(home)
                counts = event_counts_sqlite(home, run_id)
            record.update(run_id=run_id, events=sum(counts.values()), events_by_type=counts)
        record.update(ok=ok, wall=m.wall, cpu=m.cpu, rss_mb=m.peak_rss_mb,
                      pss_mb=m.peak_pss_mb, procs=m.peak_procs,
                      load_before=m.load_before, load_after=m.load_after)
        if pg is not None:
            record["postgres_rss_mb"] = pg.rss_mb()
        if not ok:
            keep = True
    finally:
        if keep:
            record["workdir"] = str(workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return record


def table(records) -> str:
    header = ["width", "tasks", "variant", "max workers", "wall s, median (min-max)",
              "wall / metaflow", "CPU s (tree)", "CPU ms / task", "peak PSS MB (tree)",
              "events / task", "runs", "load 1-min"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cells = {}
    for r in records:
        cells.setdefault((r["width"], r["variant"]), []).append(r)
    for (width, variant), rs in sorted(cells.items()):
        good = [r for r in rs if r["ok"]]
        failed = len(rs) - len(good)
        if not good:
            lines.append("| %d | %d | %s | %d | FAILED x%d |" % (
                width, width + 3, variant, rs[0]["max_workers"], failed) + " |" * 7)
            continue
        base = [r["wall"] for r in cells.get((width, "metaflow"), []) if r["ok"]]
        wall = statistics.median(r["wall"] for r in good)
        tasks = width + 3
        events = [r["events"] for r in good if "events" in r]
        loads = [r["load_before"] for r in good] + [r["load_after"] for r in good]
        lines.append("| " + " | ".join([
            str(width), str(tasks), variant, str(good[0]["max_workers"]),
            median_range([r["wall"] for r in good]),
            "" if variant == "metaflow" or not base else
            "**%.2fx**" % (wall / statistics.median(base)),
            median_range([r["cpu"] for r in good]),
            "%.0f" % (1000 * statistics.median(r["cpu"] for r in good) / tasks),
            median_range([r["pss_mb"] for r in good], "%.0f"),
            "%.1f" % (statistics.median(events) / tasks) if events else "",
            "%d%s" % (len(good), " (%d failed)" % failed if failed else ""),
            "%.1f-%.1f" % (min(loads), max(loads)),
        ]) + " |")
    return "\n".join(lines)


def events_table(records) -> str:
    """Event-log rows per task, by type (median over a cell's runs)."""
    cells = {}
    for r in records:
        if r["ok"] and "events_by_type" in r:
            cells.setdefault((r["width"], r["variant"]), []).append(r)
    if not cells:
        return ""
    kinds = sorted({k for rs in cells.values() for r in rs for k in r["events_by_type"]})
    header = ["event type"] + ["%s %d" % (v, w) for (w, v) in sorted(cells)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kind in kinds + ["all"]:
        row = [kind]
        for (width, variant) in sorted(cells):
            rs = cells[(width, variant)]
            n = statistics.median(r["events"] if kind == "all" else
                                  r["events_by_type"].get(kind, 0) for r in rs)
            row.append("%d (%.2f / task)" % (n, n / (width + 3)))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="10000", help="comma-separated foreach widths")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset of: %s" % ", ".join(VARIANTS))
    parser.add_argument("--max-workers", type=int, default=16,
                        help="parallel tasks on both sides (Metaflow's default: 16)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp directories")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            parser.error("unknown variant %r" % v)
    become_subreaper()
    records = []
    started = time.strftime("%Y%m%d-%H%M%S")
    with contextlib.ExitStack() as stack:
        pg, servers = None, ()
        if "dagster-postgres" in variants:
            import services

            pg_dir = Path(tempfile.mkdtemp(prefix="mfd-scale-pg-"))
            stack.callback(shutil.rmtree, pg_dir, True)
            pg = stack.enter_context(services.postgres(pg_dir))
            servers = (pg.pid,)  # measured apart: not in the tree, never reaped
        for width in widths:
            for i in range(args.runs):
                for variant in (variants if i % 2 == 0 else list(reversed(variants))):
                    r = run_once(variant, width, args.max_workers,
                                 pg if variant == "dagster-postgres" else None, servers,
                                 args.keep)
                    records.append(r)
                    print("%-16s width=%-6d %s wall=%.1fs cpu=%.1fs pss=%.0fMB events=%s "
                          "load=%.1f->%.1f%s" % (
                              variant, width, "ok " if r["ok"] else "FAILED", r["wall"],
                              r["cpu"], r["pss_mb"], r.get("events", "-"), r["load_before"],
                              r["load_after"], "" if r["ok"] else " (kept %s)" % r["workdir"]),
                          file=sys.stderr, flush=True)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "scale-%s.json" % started)
    machine = {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "mem_gb": _mem_gb(),
               "python": sys.version.split()[0]}
    with open(path, "w") as f:
        json.dump({"machine": machine, "records": records}, f, indent=1)
    print("Machine: %(cpus)d CPUs (%(cpu_model)s), %(mem_gb).0f GB RAM, Python %(python)s"
          % machine)
    print("Max workers (both sides): %d. Raw results: %s\n" % (args.max_workers,
                                                               os.path.relpath(path)))
    print(table(records))
    counts = events_table(records)
    if counts:
        print("\nEvent-log rows by type:\n")
        print(counts)


if __name__ == "__main__":
    main()
