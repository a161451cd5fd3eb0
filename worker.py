"""Run the collections worker alone against the configured services: ``python worker.py``.

Reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, DATABASE_URL and OVERDUE_HOME from the environment;
without them it joins the embedded stack that ``overdue up`` runs.
"""

from overdue.cli import run_worker_command

if __name__ == "__main__":
    run_worker_command()
