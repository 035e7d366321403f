"""Starting a Metaflow task process: the launcher (which task runs next, its command
and environment), the process itself (processes.py), the task template tasks are
forked from, the code package the task runs from, the settings and the production
token it gets, the preflight checks, and where its output shows (step_logs.py)."""
