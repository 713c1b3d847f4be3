"""Scaling benchmark (issue 12): reaction times, drains and the decision loop."""
