"""@schedule firing every minute (EventBridge syntax), for one real daemon tick."""

from metaflow import FlowSpec, current, schedule, step


@schedule(cron="* * * * ? *")
class ProdMinutelyFlow(FlowSpec):
    @step
    def start(self):
        self.started_by = current.run_id
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProdMinutelyFlow()
