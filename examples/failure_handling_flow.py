"""FailureHandlingFlow: @retry for transient errors, @catch for bugs, @card for a report.

Deterministic: with ``--simulate_api_failure True`` (the default) the API call
fails on its first two attempts and succeeds on the third.

    python failure_handling_flow.py run
    python failure_handling_flow.py run --simulate_api_failure False
    python failure_handling_flow.py run --simulate_code_bug True
"""

from metaflow import FlowSpec, Parameter, card, catch, current, retry, step


class FailureHandlingFlow(FlowSpec):
    simulate_api_failure = Parameter("simulate_api_failure", type=bool, default=True)
    simulate_code_bug = Parameter("simulate_code_bug", type=bool, default=False)

    @step
    def start(self):
        print("Starting the flow.")
        self.next(self.api_call)

    # Retry up to 3 times on failure (e.g. a flaky network).
    @retry(times=3, minutes_between_retries=0)
    @step
    def api_call(self):
        print("Simulating API call, attempt %d..." % current.retry_count)
        if self.simulate_api_failure and current.retry_count < 2:
            raise RuntimeError("API request failed! Retrying...")
        print("API call succeeded.")
        self.api_data = {"message": "API call successful"}
        self.api_attempts = current.retry_count + 1
        self.next(self.risky_logic)

    # Catch unexpected logic bugs and fall back.
    @catch(var="error_info")
    @step
    def risky_logic(self):
        print("Running some logic with potential bugs...")
        if self.simulate_code_bug:
            raise ValueError("Logic bug occurred!")
        self.result = "Success!"
        self.next(self.summarize)

    # The default card shows the artifacts of this step.
    @card
    @step
    def summarize(self):
        if self.error_info:
            print("Step failed but caught:", self.error_info)
            self.outcome = "caught %s: %s" % (self.error_info.type, self.error_info.exception)
        else:
            print("Logic succeeded:", self.result)
            self.outcome = self.result
        print("API data:", self.api_data)
        self.next(self.end)

    @step
    def end(self):
        print("Flow completed.")


if __name__ == "__main__":
    FailureHandlingFlow()
