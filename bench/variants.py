"""What the benchmark runs a flow under: Metaflow's own runtime, or the
compiled job under one of the executors `dagster create --executor` offers."""

from dataclasses import dataclass, field
from typing import Dict, List


@dataclass
class Variant:
    kind: str  # "metaflow" or "dagster"
    description: str
    run_args: List[str] = field(default_factory=list)
    create_args: List[str] = field(default_factory=list)
    env: Dict[str, str] = field(default_factory=dict)  # for the run


VARIANTS = {
    "metaflow": Variant("metaflow", "`python flow.py run`"),
    "dagster": Variant("dagster", "the generated job (default --executor metaflow: ops as "
                       "threads of the run process, each task its own process forked from a "
                       "task template)"),
    "dagster-fresh": Variant("dagster", "the generated job with every task a fresh "
                             "interpreter (METAFLOW_DAGSTER_TASK_TEMPLATE=0: no task template)",
                             env={"METAFLOW_DAGSTER_TASK_TEMPLATE": "0"}),
    "multiprocess": Variant("dagster", "`dagster create --executor multiprocess`: Dagster's "
                            "stock executor, one forkserver process per op",
                            create_args=["--executor", "multiprocess"]),
}
