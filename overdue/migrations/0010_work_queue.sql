-- The work queue: every wait on a person is a case (``workflows.queue``), opened by the loan's
-- collection with a deadline in working days, assigned, escalated to the supervisor queue past
-- its deadline, and closed by the decision (or the loan's close), or resolved (a complaint).
-- The row holds the case as it stands; each change is in the audit log, keyed by the case.
CREATE TABLE cases (
    case_id       text PRIMARY KEY,
    loan_id       text NOT NULL REFERENCES loans (loan_id),
    kind          text NOT NULL
        CHECK (kind IN ('review', 'dispute', 'death', 'estate', 'complaint')),
    asked         text NOT NULL,
    team          text NOT NULL,
    opened_at     timestamptz NOT NULL,
    deadline      timestamptz NOT NULL,
    assignee      text,
    escalated_at  timestamptz,
    closed_at     timestamptz,
    outcome       text,
    note          text NOT NULL DEFAULT ''
);
-- The queue reads open cases oldest first.
CREATE INDEX cases_open ON cases (opened_at) WHERE closed_at IS NULL;
CREATE INDEX cases_loan ON cases (loan_id);

-- A complaint's outcome, once resolved.
ALTER TABLE complaint_cases ADD COLUMN outcome text, ADD COLUMN resolved_at timestamptz;
