"""@trigger on event data_ready; its payload fields alpha_value and beta_value set
Parameters alpha (default "unset") and beta (no default). start keeps what it saw of
the parameters and of current.trigger."""

from metaflow import FlowSpec, Parameter, current, step, trigger


@trigger(event={"name": "data_ready",
                "parameters": {"alpha": "alpha_value", "beta": "beta_value"}})
class ProdEventFlow(FlowSpec):
    alpha = Parameter("alpha", default="unset")
    beta = Parameter("beta", type=str)

    @step
    def start(self):
        self.alpha_seen = self.alpha
        self.beta_seen = self.beta
        self.event_name = current.trigger.event.name if current.trigger else None
        self.next(self.end)

    @step
    def end(self):
        assert self.alpha == self.alpha_seen


if __name__ == "__main__":
    ProdEventFlow()
