"""What Dagster shows about Metaflow tasks and runs: output metadata, artifacts,
cards, and the task's Metaflow logs (what the task printed, saved for the Client API)."""
