"""Run the collections worker alone against the configured services: ``python worker.py``.

Reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, DATABASE_URL and OVERDUE_HOME from the environment;
without them it joins the embedded stack that ``overdue up`` runs.
"""

import sys

from overdue.cli import main

if __name__ == "__main__":
    sys.argv[1:1] = ["worker"]
    main()
