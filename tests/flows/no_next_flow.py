"""A step whose code never calls self.next(): ``work``'s user decorator falls back
(Parameter ``fallback``, on by default) to code that forgets it. Metaflow's runtime
fails the run once the task has succeeded, without retrying it (despite @retry)."""

from metaflow import FlowSpec, Parameter, retry, step, user_step_decorator


@user_step_decorator
def with_fallback(step_name, flow, inputs=None):
    if flow.fallback:
        def fallback(self):
            self.value = "from the fallback"  # and no self.next()
        yield fallback
    else:
        yield


class NoNextFlow(FlowSpec):
    fallback = Parameter("fallback", type=bool, default=True)

    @step
    def start(self):
        self.next(self.work)

    @retry(times=2)
    @with_fallback
    @step
    def work(self):
        self.value = "from the step"
        self.next(self.end)

    @step
    def end(self):
        print("value:", self.value)


if __name__ == "__main__":
    NoNextFlow()
