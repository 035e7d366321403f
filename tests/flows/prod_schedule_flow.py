"""@schedule with an EventBridge cron and a timezone: 10:00 Berlin time every day."""

from metaflow import FlowSpec, schedule, step


@schedule(cron="0 10 * * ? *", timezone="Europe/Berlin")
class ProdScheduleFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProdScheduleFlow()
