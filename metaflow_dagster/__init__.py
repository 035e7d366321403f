"""metaflow-dagster: compile Metaflow flows into Dagster jobs."""

__version__ = "0.2.0"

# Metaflow's code package (made by `dagster create`) ships this package with the
# flow, so a task runs the metaflow-dagster code it was deployed with, and a task
# that Metaflow's compute layer (@kubernetes, @batch) runs in a container finds the
# `dagster_internal` step decorator without metaflow-dagster installed there.
METAFLOW_PACKAGE_POLICY = "include"

# The dg component, imported on first use: tasks and `dagster create` import this
# package and must not pay for importing dagster. `dg` finds it through the
# `dagster_dg_cli.registry_modules` entry point (pyproject.toml), which lists this
# module's names with dir().
_LAZY = {"MetaflowFlowComponent": "metaflow_dagster.component"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
