"""Deterministic collection logic: the workflow, the state machine and the contact planner."""
