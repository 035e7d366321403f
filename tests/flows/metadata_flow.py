"""start (foreach over names) -> count (@card) -> join -> end, with artifacts that
Dagster's metadata must show (names), cut (long text) or hide (a token, a value that
looks like an AWS key, objects of the flow's own classes)."""

from metaflow import FlowSpec, card, current, step
from metaflow.cards import Markdown


class Point:
    def __init__(self, x):
        self.x = x


class MetadataFlow(FlowSpec):
    """Counts the letters of a few names.

    A second paragraph, long enough that the generated file has to wrap it over several
    lines to stay within 88 columns, which it does between words."""

    @step
    def start(self):
        """Pick the names."""
        self.names = ["alice", "bob", "carol-ann"]
        self.api_token = "not-a-real-token"
        self.note = "key AKIAABCDEFGHIJKLMNOP here"
        self.long_text = "word " * 40
        self.big = "x" * 5000
        self.points = [Point(1)]
        self.next(self.count, foreach="names")

    @card(type="blank")
    @step
    def count(self):
        """Count one name's letters."""
        current.card.append(Markdown("## %s has %d letters" % (self.input, len(self.input))))
        self.letters = len(self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.letters for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MetadataFlow()
