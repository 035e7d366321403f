"""The executors of compiled jobs: the selector every job uses (selector.py) over
our thread executor (threads.py), Dagster's multiprocess executor (multiprocess.py),
dagster-celery (celery.py) and dagster-k8s, and what becomes of a run whose worker
died (workers.py)."""
