"""What the benchmark runs a flow under: Metaflow's own runtime, or the
compiled job under one of the executors `dagster create --executor` offers."""

from dataclasses import dataclass, field
from typing import List


@dataclass
class Variant:
    kind: str  # "metaflow" or "dagster"
    description: str
    run_args: List[str] = field(default_factory=list)
    create_args: List[str] = field(default_factory=list)


VARIANTS = {
    "metaflow": Variant("metaflow", "`python flow.py run`"),
    "dagster": Variant("dagster", "the generated job (default --executor metaflow: ops as "
                       "threads of the run process, each task its own process)"),
    "multiprocess": Variant("dagster", "`dagster create --executor multiprocess`: Dagster's "
                            "stock executor, one forkserver process per op",
                            create_args=["--executor", "multiprocess"]),
}
