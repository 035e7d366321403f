"""What Dagster shows about a finished Metaflow task (the metadata of the op's output)
and about a finished run (the flow asset's materialization, which the end op records).

- A task: its pathspec, the attempt that succeeded, a copy-ready Client snippet, a link
  to each of its cards (and the content of the simple ones), its artifacts.
- A run: its pathspec, a Client snippet, links to its cards, the end step's artifacts.
"""

from typing import Iterable, List, Optional

from dagster import AssetKey, AssetMaterialization, MetadataValue

from ... import naming
from ...plan import FlowPlan
from .artifacts import artifacts_markdown, task_artifacts
from .cards import card_metadata, run_cards, task_cards

# Card links on an output (a region op runs many tasks) and on a run's materialization
# (a wide foreach may have thousands).
MAX_LINKED_CARDS = 10


def client_snippet(kind: str, pathspec: str) -> str:
    """Copy-ready Client code. namespace(None): the tasks may run in another user's
    namespace, or a production one."""
    return 'from metaflow import %s, namespace; namespace(None); %s("%s")' % (
        kind, kind, pathspec)


def task_metadata(plan: FlowPlan, task_path: str, attempt: int,
                  card_tasks: Optional[Iterable[str]] = None,
                  artifacts: Optional[List[dict]] = None) -> dict:
    """Metadata of the task at task_path (run_id/step/task_id); `card_tasks` are the
    tasks whose cards to link (default: this one; a region op links all of its own);
    `artifacts` those the task reported, if it did (see artifacts.task_artifacts)."""
    pathspec = "%s/%s" % (plan.flow_name, task_path)
    metadata = {
        "metaflow_pathspec": MetadataValue.text(pathspec),
        "metaflow_attempt": MetadataValue.int(attempt),
        "client": MetadataValue.text(client_snippet("Task", pathspec)),
    }
    cards = []
    for path in card_tasks if card_tasks is not None else [task_path]:
        if plan.step(path.split("/")[1]).cards and len(cards) < MAX_LINKED_CARDS:
            cards += task_cards(plan, path)
    metadata.update(card_metadata(plan, cards[:MAX_LINKED_CARDS]))
    metadata["artifacts"] = MetadataValue.md(
        artifacts_markdown(task_artifacts(plan, task_path, artifacts)))
    return metadata


def flow_asset_key(plan: FlowPlan) -> AssetKey:
    return AssetKey(naming.flow_asset_key(plan.flow_name, plan.project.get("project_name"),
                                          plan.project.get("branch_name")))


def flow_materialization(plan: FlowPlan, run_id: str, end_task_path: str,
                         end_artifacts: Optional[List[dict]] = None) -> AssetMaterialization:
    """The flow asset's materialization for a run whose end task has succeeded
    (`end_artifacts`: those the end task reported, if it did)."""
    run_pathspec = "%s/%s" % (plan.flow_name, run_id)
    metadata = {
        "metaflow_run": MetadataValue.text(run_pathspec),
        "client": MetadataValue.text(client_snippet("Run", run_pathspec)),
    }
    metadata.update(card_metadata(plan, run_cards(plan, run_id, MAX_LINKED_CARDS), inline=False))
    metadata["end artifacts"] = MetadataValue.md(
        artifacts_markdown(task_artifacts(plan, end_task_path, end_artifacts)))
    return AssetMaterialization(
        asset_key=flow_asset_key(plan),
        description="Metaflow run %s" % run_pathspec,
        metadata=metadata,
    )
