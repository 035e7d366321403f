"""metaflow-dagster: compile Metaflow flows into Dagster jobs."""

__version__ = "0.1.0"
