"""`dagster create`: flow + options -> plan -> the text of a definitions file.

Runs in the user's `python flow.py dagster create` process. Never imports dagster
(importing it would double the compile time); tests/unit/test_boundaries.py checks.
"""
