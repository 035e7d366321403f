"""UIFlow, the flow the browser test launches from the Dagster UI.

A typed Parameter sets the fan-out width of a foreach and a label; ``join`` renders
Metaflow's default card, ``report`` a blank card with Markdown only (simple enough to
show inline in Dagster). Run it locally with:
    python ui_flow.py run --width 4 --label "from the CLI"
"""

from metaflow import FlowSpec, Parameter, card, current, step
from metaflow.cards import Markdown


class UIFlow(FlowSpec):
    """Squares the first `width` integers in parallel and reports them on a card."""

    width = Parameter("width", type=int, default=2, help="Number of foreach branches")
    label = Parameter("label", type=str, default="default label", help="A label for the card")

    @step
    def start(self):
        """Make one item per foreach branch."""
        self.items = list(range(self.width))
        self.next(self.square, foreach="items")

    @step
    def square(self):
        """Square one item."""
        self.value = self.input * self.input
        self.next(self.join)

    @card
    @step
    def join(self, inputs):
        """Collect the squares."""
        self.squares = sorted(inp.value for inp in inputs)
        self.next(self.report)

    @card(type="blank")
    @step
    def report(self):
        """Show the squares on a card."""
        rows = "\n".join("| %d | %d |" % (i, v) for i, v in enumerate(self.squares))
        current.card.append(Markdown("# %s\n\nsquares: %s\n\n| item | square |\n|---|---|\n%s"
                                     % (self.label, self.squares, rows)))
        self.seen = {"width": self.width, "label": self.label, "squares": self.squares}
        self.next(self.end)

    @step
    def end(self):
        """Check that every branch reported."""
        assert len(self.squares) == self.width, (self.squares, self.width)


if __name__ == "__main__":
    UIFlow()
