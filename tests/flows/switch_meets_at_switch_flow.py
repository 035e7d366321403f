"""A switch whose cases meet at another switch (the shape of Metaflow's own
test/ux/core/flows/dag/foreach_split_switch_dedup_flow.py):

start -(optional_mode)-> {optional_step | fan_gate}; optional_step -> fan_gate
fan_gate -(fan_mode)-> {fan_out | end}; fan_out foreach -> fan_step -> join_step -> end

`fan_gate` is reached from both cases of `start`, and `end` from both of `fan_gate`.
"""

from metaflow import FlowSpec, Parameter, step


class SwitchMeetsAtSwitchFlow(FlowSpec):
    optional_mode = Parameter("optional_mode", default="run", help="run or skip")
    fan_mode = Parameter("fan_mode", default="run", help="run or skip")

    @step
    def start(self):
        self.trail = ["start"]
        self.mode = self.optional_mode
        self.next({"skip": self.fan_gate, "run": self.optional_step}, condition="mode")

    @step
    def optional_step(self):
        self.trail = self.trail + ["optional_step"]
        self.next(self.fan_gate)

    @step
    def fan_gate(self):
        self.trail = self.trail + ["fan_gate"]
        self.fan = self.fan_mode
        self.next({"skip": self.end, "run": self.fan_out}, condition="fan")

    @step
    def fan_out(self):
        self.trail = self.trail + ["fan_out"]
        self.scan_items = [1, 2]
        self.next(self.fan_step, foreach="scan_items")

    @step
    def fan_step(self):
        self.doubled = self.input * 2
        self.next(self.join_step)

    @step
    def join_step(self, inputs):
        self.trail = inputs[0].trail + ["join_step"]
        self.doubled = [i.doubled for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        self.trail = self.trail + ["end"]


if __name__ == "__main__":
    SwitchMeetsAtSwitchFlow()
