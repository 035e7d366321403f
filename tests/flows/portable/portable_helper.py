"""Imported by portable_flow.py: part of the flow's code package."""

GREETING = "deployed"


def square(x):
    return x * x
