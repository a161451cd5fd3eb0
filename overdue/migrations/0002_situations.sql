-- Situations: what conversations reveal, complaint cases, and how promises end.
-- Every row is keyed by the id its activity carries, so a retried write changes nothing.

-- A contact outcome as reported (by a collector, a dialer, an agent desk or the simulator).
-- `details` holds the facts the outcome carried, and nothing else.
CREATE TABLE contact_outcomes (
    outcome_id    text PRIMARY KEY,
    loan_id       text NOT NULL REFERENCES loans (loan_id),
    source        text NOT NULL,
    at            timestamptz NOT NULL,
    right_party   boolean NOT NULL,
    stage         text NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}',
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contact_outcomes_loan ON contact_outcomes (loan_id, at);

-- A complaint is a case of its own, routed by category; the repayment track goes on.
CREATE TABLE complaint_cases (
    case_id       text PRIMARY KEY,
    loan_id       text NOT NULL REFERENCES loans (loan_id),
    category      text NOT NULL
        CHECK (category IN ('sale', 'approved_amount', 'company', 'collector_conduct')),
    route         text NOT NULL,
    status        text NOT NULL DEFAULT 'open',
    note          text,
    opened_at     timestamptz NOT NULL
);
CREATE INDEX complaint_cases_loan ON complaint_cases (loan_id);

-- How a promise ended, and what was paid towards it. A promise ends once: the settlement only
-- updates an open promise.
ALTER TABLE promises
    ADD COLUMN source      text,
    ADD COLUMN paid_minor  bigint NOT NULL DEFAULT 0 CHECK (paid_minor >= 0),
    ADD COLUMN settled_at  timestamptz,
    ADD CONSTRAINT promises_status
        CHECK (status IN ('open', 'kept', 'broken', 'partially_kept'));
CREATE INDEX promises_loan ON promises (loan_id, made_at);

-- The credit bureau's reference for a record it accepted.
ALTER TABLE credit_records ADD COLUMN bureau_reference text;
CREATE INDEX credit_records_loan ON credit_records (loan_id);
CREATE INDEX fees_loan ON fees (loan_id);
