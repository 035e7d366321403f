"""cProfile of a `dagster job execute` run process, all threads merged (the
threads executor runs ops in threads, which plain `python -m cProfile` misses).

    python bench/cprofile_run.py OUT.prof -- job execute -f job.py -j Job
    python -c "import pstats; pstats.Stats('OUT.prof').sort_stats('cumtime').print_stats(40)"
"""

import atexit
import cProfile
import pstats
import sys
import threading

profiles = []
lock = threading.Lock()


def _start_thread_profile(frame, event, arg):
    # first profiler event in a new thread: swap in a real profiler for it
    sys.setprofile(None)
    prof = cProfile.Profile()
    with lock:
        profiles.append(prof)
    prof.enable()


def _dump(path):
    for prof in profiles:
        try:
            prof.disable()
        except Exception:
            pass
    stats = None
    for prof in profiles:
        try:
            stats = pstats.Stats(prof) if stats is None else stats.add(prof) or stats
        except TypeError:  # a profiler that saw no calls
            continue
    if stats is not None:
        stats.dump_stats(path)


def main():
    out = sys.argv[1]
    args = sys.argv[sys.argv.index("--") + 1:]
    threading.setprofile(_start_thread_profile)
    main_prof = cProfile.Profile()
    profiles.append(main_prof)
    atexit.register(_dump, out)
    from dagster._cli import main as dagster_main

    sys.argv = ["dagster"] + args
    main_prof.enable()
    try:
        dagster_main()
    finally:
        _dump(out)


if __name__ == "__main__":
    main()
