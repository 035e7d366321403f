"""Where the tasks' cards are, and how Dagster leads to them.

- Metaflow's card *client* (`get_cards`) reads a task's cards under its `ds-root`
  metadata + `mf.cards`; its card *writer* (`card create`, which @card runs inside the
  task) puts those of a local datastore under the `.metaflow` nearest the task's working
  directory (Metaflow 2.19 ignores METAFLOW_CARD_LOCALROOT there). The two agree because
  tasks of a local datastore run in the folder holding it (settings.working_directory).
- The ops list a finished task's cards and link each to Metaflow's own card server
  (`python flow.py card server`), whose /card route serves
  <base>/card/<Flow>/<run>/<step>/<task>/<hash>; the base URL comes from
  naming.CARD_SERVER_URL_ENV.
- A blank card made only of Markdown and text (`current.card.append(Markdown(...))`)
  that is short can be read in place: its content becomes Markdown metadata too.
"""

import base64
import json
import os
import re
from dataclasses import dataclass
from typing import List, Optional

from dagster import MetadataValue

from ... import naming
from ...plan import FlowPlan
from ..datastore import flow_datastore, plan_datastore
from ..launch.settings import datastore_location

# metaflow_config.CARD_SUFFIX.
CARD_SUFFIX = "mf.cards"
# Inline Markdown only for cards whose text is at most this long.
MAX_INLINE_CHARS = 4000
# The base64 data a simple card of that size can carry, with room to spare, and how
# much of a card's HTML to read to find it (after the template's ~50 KB of icon and CSS).
MAX_INLINE_DATA_CHARS = 64000
MAX_HTML_HEAD_CHARS = 256 * 1024
_CARD_DATA = re.compile(r'__MF_DATA__\["[^"\\]*"\]\s*=\s*"([A-Za-z0-9+/=]*)"')


def card_root(plan: FlowPlan) -> str:
    """Where the deployment's card client reads the cards: <datastore root>/mf.cards."""
    return os.path.join(datastore_location(plan)[1], CARD_SUFFIX)


@dataclass(frozen=True)
class TaskCard:
    pathspec: str  # Flow/run/step/task
    type: str
    id: Optional[str]
    hash: str
    path: str  # in the card store

    @property
    def name(self) -> str:
        return self.id or self.type

    def url(self) -> str:
        base = os.environ.get(naming.CARD_SERVER_URL_ENV) or naming.DEFAULT_CARD_SERVER_URL
        return "%s/card/%s/%s" % (base.rstrip("/"), self.pathspec, self.hash)


def _card_store(plan: FlowPlan):
    plan_datastore(plan)  # imports metaflow, once (see datastore.py)
    return flow_datastore(plan.flow_name, datastore_location(plan)[0], card_root(plan))


def task_cards(plan: FlowPlan, task_path: str) -> List[TaskCard]:
    """The cards of a finished task (run_id/step/task_id), as the card client lists
    them."""
    from metaflow.plugins.cards.card_datastore import CardDatastore
    from metaflow.plugins.cards.exception import CardNotPresentException

    pathspec = "%s/%s" % (plan.flow_name, task_path)
    store = CardDatastore(_card_store(plan), pathspec=pathspec)
    try:
        paths = store.extract_card_paths()
    except CardNotPresentException:
        return []
    cards = []
    for path in sorted(paths):
        info = store.info_from_path(path)
        cards.append(TaskCard(pathspec, info.type, info.id, info.hash, path))
    return cards


def run_cards(plan: FlowPlan, run_id: str, limit: int) -> List[TaskCard]:
    """Up to `limit` cards of a run: those of its steps that have @card, in step order."""
    if not any(step.cards for step in plan.steps):
        return []  # without opening the card store, which imports Metaflow
    storage = _card_store(plan)._storage_impl
    cards: List[TaskCard] = []
    for step in plan.steps:
        if not step.cards:
            continue
        tasks_dir = storage.path_join(plan.flow_name, "runs", run_id, "steps", step.name,
                                      "tasks")
        task_ids = sorted(storage.path_split(entry.path)[-1]
                          for entry in storage.list_content([tasks_dir]) if not entry.is_file)
        for task_id in task_ids:
            cards += task_cards(plan, naming.task_pathspec(run_id, step.name, task_id))
            if len(cards) >= limit:
                return cards[:limit]
    return cards


def card_markdown(plan: FlowPlan, card: TaskCard) -> Optional[str]:
    """A blank card's content as Markdown if it is simple (see html_markdown); else
    None. Only blank cards: the others (default, custom types) show more than their
    components."""
    if card.type != "blank":
        return None
    storage = _card_store(plan)._storage_impl
    with storage.load_bytes([card.path]) as loaded:
        for _, local_path, _ in loaded:
            if local_path is None:
                return None
            # The card's data comes before its ~1 MB of script (card_modules/base.html).
            with open(local_path, encoding="utf-8", errors="replace") as f:
                return html_markdown(f.read(MAX_HTML_HEAD_CHARS))
    return None


def html_markdown(html: str) -> Optional[str]:
    """The content of a card rendered by Metaflow's own card template, as Markdown, if
    it is made of Markdown, text and titles only and is short; else None."""
    start = html.find("__MF_DATA__[")
    match = _CARD_DATA.match(html, start) if start >= 0 else None
    if not match or len(match.group(1)) > MAX_INLINE_DATA_CHARS:
        return None  # not a card of Metaflow's own template, or a big one
    try:
        components = json.loads(base64.b64decode(match.group(1)))["components"]
        text = "\n\n".join(_markdown(components))
    except (ValueError, KeyError, TypeError, AttributeError, _NotSimple):
        return None
    return text if 0 < len(text) <= MAX_INLINE_CHARS else None


class _NotSimple(Exception):
    pass


def _markdown(components: list) -> List[str]:
    parts = []
    for component in components:
        kind = component.get("type")
        if kind in ("page", "section"):
            if component.get("title"):
                parts.append("## %s" % component["title"])
            parts += _markdown(component.get("contents") or [])
        elif kind == "markdown":
            parts.append((component.get("source") or "").strip())
        elif kind == "text":
            parts.append(str(component.get("text") or ""))
        elif kind in ("title", "subtitle"):
            parts.append("%s %s" % ("#" if kind == "title" else "##", component.get("text")))
        else:
            raise _NotSimple(kind)
    return [p for p in parts if p]


def card_metadata(plan: FlowPlan, cards: List[TaskCard], inline: bool = True) -> dict:
    """A link to each card (one click from the step's events to the rendered card) and,
    with `inline`, the content of each simple one."""
    metadata = {}
    for card in cards:
        label = _label(card, cards)
        if label in metadata:
            label = "%s (%s)" % (label, card.hash[:5])
        metadata[label] = MetadataValue.url(card.url())
        text = card_markdown(plan, card) if inline else None
        if text:
            metadata[label.replace("card", "card content", 1)] = MetadataValue.md(text)
    return metadata


def _label(card: TaskCard, cards: List[TaskCard]) -> str:
    """"card"; with several, what tells them apart: the task, the card's id or type."""
    tasks = {c.pathspec for c in cards}
    parts = []
    if len(tasks) > 1:
        parts.append("/".join(card.pathspec.split("/")[2:]))
    if len(cards) > len(tasks):
        parts.append(card.name)
    return "card: %s" % " ".join(parts) if parts else "card"
