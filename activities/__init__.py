"""Activities: every side effect of a collection lives here, and every write is idempotent."""
