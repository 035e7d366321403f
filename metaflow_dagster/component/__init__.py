"""The dg component: a Metaflow flow declared in a `dg` project's defs.yaml.

Runs where Dagster loads a project (`dg`, `dagster dev`, a code server): imports
dagster, the runtime and the compiler's pure modules, never Metaflow or deploy/ (the
state is computed by the CLI, in its own process). tests/unit/test_boundaries.py checks.
"""

from .component import MetaflowFlowComponent

__all__ = ["MetaflowFlowComponent"]
