"""What starts a run without a user: the event sensors (@trigger) and the
flow-finished sensors (@trigger_on_finish), and the events they read; and what a
run's end starts: the run-status sensors that send notifications."""
