"""HelloFlow: a small friendly flow that fans out over three names.

Run it with Metaflow, or compile it and run it on Dagster:
    python hello_flow.py run
    python hello_flow.py dagster create hello_flow_dagster.py
    dagster job execute -f hello_flow_dagster.py -j HelloFlow
"""

from metaflow import FlowSpec, Parameter, step


class HelloFlow(FlowSpec):
    greeting = Parameter("greeting", default="hello", help="How to greet everyone")

    @step
    def start(self):
        self.names = ["Ada", "Grace", "Linus"]
        self.next(self.greet, foreach="names")

    @step
    def greet(self):
        self.line = "%s, %s!" % (self.greeting.capitalize(), self.input)
        print(self.line)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.lines = [inp.line for inp in inputs]
        self.next(self.end)

    @step
    def end(self):
        self.message = " ".join(self.lines)
        print(self.message)


if __name__ == "__main__":
    HelloFlow()
