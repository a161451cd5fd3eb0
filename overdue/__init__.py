"""overdue: the CLI, configuration, embedded stack, database and simulator around the workflows."""
