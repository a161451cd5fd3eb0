-- The collection ledger and audit trail.
-- Money is integer minor units next to an ISO 4217 currency code. Times are UTC (timestamptz).
-- Every table an activity writes has a natural or idempotency key, so a retried write changes nothing.

CREATE TABLE borrowers (
    borrower_id   text PRIMARY KEY,
    name          text NOT NULL,
    phone         text NOT NULL,
    timezone      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE loans (
    loan_id           text PRIMARY KEY,
    borrower_id       text NOT NULL REFERENCES borrowers (borrower_id),
    product           text NOT NULL,
    principal_minor   bigint NOT NULL CHECK (principal_minor > 0),
    outstanding_minor bigint NOT NULL CHECK (outstanding_minor >= 0),
    currency          char(3) NOT NULL,
    due_date          date NOT NULL,
    jurisdiction      text NOT NULL,
    stage             text NOT NULL DEFAULT 'early',
    opened_at         timestamptz NOT NULL,
    closed_at         timestamptz
);

CREATE TABLE contacts (
    loan_id     text NOT NULL REFERENCES loans (loan_id),
    contact_id  text NOT NULL,
    name        text NOT NULL,
    phone       text NOT NULL,
    relation    text NOT NULL,
    PRIMARY KEY (loan_id, contact_id)
);

CREATE TABLE payments (
    payment_id         text PRIMARY KEY,
    loan_id            text NOT NULL REFERENCES loans (loan_id),
    amount_minor       bigint NOT NULL CHECK (amount_minor > 0),
    currency           char(3) NOT NULL,
    paid_at            timestamptz NOT NULL,
    source             text NOT NULL,
    outstanding_before bigint NOT NULL,
    outstanding_after  bigint NOT NULL,
    overpaid_minor     bigint NOT NULL DEFAULT 0,
    stage              text NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_loan ON payments (loan_id);

CREATE TABLE contact_attempts (
    idempotency_key text PRIMARY KEY,
    loan_id         text NOT NULL REFERENCES loans (loan_id),
    attempt_no      integer NOT NULL,
    channel         text NOT NULL,
    target          text NOT NULL,
    target_id       text NOT NULL,
    slot            text NOT NULL,
    purpose         text NOT NULL,
    stage           text NOT NULL,
    at_utc          timestamptz NOT NULL,
    at_local        text NOT NULL,
    outcome         text NOT NULL,
    message         text,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (loan_id, attempt_no)
);

CREATE TABLE promises (
    promise_id    text PRIMARY KEY,
    loan_id       text NOT NULL REFERENCES loans (loan_id),
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    currency      char(3) NOT NULL,
    due_date      date NOT NULL,
    status        text NOT NULL DEFAULT 'open',
    made_at       timestamptz NOT NULL
);

CREATE TABLE fees (
    fee_key       text PRIMARY KEY,
    loan_id       text NOT NULL REFERENCES loans (loan_id),
    kind          text NOT NULL,
    amount_minor  bigint NOT NULL CHECK (amount_minor >= 0),
    currency      char(3) NOT NULL,
    charged_at    timestamptz NOT NULL
);

CREATE TABLE credit_records (
    record_key    text PRIMARY KEY,
    loan_id       text NOT NULL REFERENCES loans (loan_id),
    kind          text NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}',
    reported_at   timestamptz NOT NULL
);

CREATE TABLE notices (
    notice_key    text PRIMARY KEY,
    loan_id       text NOT NULL REFERENCES loans (loan_id),
    kind          text NOT NULL,
    path          text NOT NULL,
    sha256        text NOT NULL,
    issued_at     timestamptz NOT NULL
);

-- Append-only: the trigger below refuses UPDATE and DELETE.
CREATE TABLE audit_log (
    seq           bigserial PRIMARY KEY,
    event_key     text NOT NULL UNIQUE,
    loan_id       text NOT NULL,
    at            timestamptz NOT NULL,
    actor         text NOT NULL,
    action        text NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}',
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_loan ON audit_log (loan_id, seq);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
