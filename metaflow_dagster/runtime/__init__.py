"""What generated definitions files import: ordinary, tested Python."""

from .job import MetaflowJob

__all__ = ["MetaflowJob"]
