"""@trigger on event data_ready; its payload field alpha_value sets Parameter alpha.
start keeps what it saw of the parameter and of current.trigger."""

from metaflow import FlowSpec, Parameter, current, step, trigger


@trigger(event={"name": "data_ready", "parameters": {"alpha": "alpha_value"}})
class ProdEventFlow(FlowSpec):
    alpha = Parameter("alpha", default="unset")

    @step
    def start(self):
        self.alpha_seen = self.alpha
        self.event_name = current.trigger.event.name if current.trigger else None
        self.next(self.end)

    @step
    def end(self):
        assert self.alpha == self.alpha_seen


if __name__ == "__main__":
    ProdEventFlow()
