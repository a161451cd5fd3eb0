-- Bulk operations: one signal sent by the Temporal server's batch operation to every running
-- collection a visibility query matched. Each loan's workflow audits what the signal changed
-- for it (``audit_log``); this row keeps the job itself: who sent what to which query, and what
-- the server reported once it was done. Keyed by the job id, so a retried command is one row.
CREATE TABLE bulk_operations (
    job_id        text PRIMARY KEY,
    signal        text NOT NULL,
    query         text NOT NULL,
    operator      text NOT NULL,
    reason        text NOT NULL DEFAULT '',
    input         jsonb NOT NULL DEFAULT '{}',
    matched       integer NOT NULL,
    started_at    timestamptz NOT NULL,
    state         text NOT NULL DEFAULT 'running',
    total         integer,
    succeeded     integer,
    failed        integer,
    finished_at   timestamptz
);
