"""A step whose code never calls self.next() inside a nested foreach (which runs as
one op, a region): ``inner``'s user decorator falls back to code that forgets it."""

from metaflow import FlowSpec, step, user_step_decorator


@user_step_decorator
def with_fallback(step_name, flow, inputs=None):
    def fallback(self):
        self.label = "from the fallback"  # and no self.next()
    yield fallback


class NoNextInRegionFlow(FlowSpec):
    @step
    def start(self):
        self.letters = ["x"]
        self.next(self.outer, foreach="letters")

    @step
    def outer(self):
        self.numbers = [1]
        self.next(self.inner, foreach="numbers")

    @with_fallback
    @step
    def inner(self):
        self.label = "from the step"
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NoNextInRegionFlow()
