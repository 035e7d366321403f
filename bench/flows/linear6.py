"""Linear: start -> s1 -> s2 -> s3 -> s4 -> end (6 tasks), trivial bodies."""

from metaflow import FlowSpec, step


class Linear6Flow(FlowSpec):
    @step
    def start(self):
        self.x = 0
        self.next(self.s1)

    @step
    def s1(self):
        self.x += 1
        self.next(self.s2)

    @step
    def s2(self):
        self.x += 1
        self.next(self.s3)

    @step
    def s3(self):
        self.x += 1
        self.next(self.s4)

    @step
    def s4(self):
        self.x += 1
        self.next(self.end)

    @step
    def end(self):
        assert self.x == 4, self.x


if __name__ == "__main__":
    Linear6Flow()
