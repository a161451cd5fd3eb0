-- What the core system received, and what each running collection was told.
--
-- A loan's payments are listed by the core with each version of the loan (`payments` in a sync
-- line). They are kept once, by payment id, with the version that first listed them: the scan
-- tells a collection only the payments listed since the version it last told it.
CREATE TABLE book.payments (
    loan_id       text NOT NULL REFERENCES book.loans (loan_id) ON DELETE CASCADE,
    payment_id    text NOT NULL,
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    paid_at       timestamptz NOT NULL,
    first_version integer NOT NULL,
    PRIMARY KEY (loan_id, payment_id)
);

-- The version of the loan its collection was last told (signal `loan_changed`) or started from;
-- NULL while no collection has heard of the book's loan. A newer version is told at the next scan.
ALTER TABLE book.loans ADD COLUMN told_version integer;

-- Each collection of a loan: the first, and one more each time the loan falls overdue again
-- after a cure. The workflow id stays the loan's (`collection-<loan id>`, the contract payment
-- services signal); the number tells the collections apart in the ledger's keys (`L-1~2:...`).
CREATE TABLE collections (
    loan_id     text NOT NULL REFERENCES loans (loan_id),
    number      integer NOT NULL CHECK (number >= 1),
    workflow_id text NOT NULL,
    run_id      text NOT NULL,
    opened_at   timestamptz NOT NULL,
    PRIMARY KEY (loan_id, number)
);
INSERT INTO collections (loan_id, number, workflow_id, run_id, opened_at)
    SELECT loan_id, 1, 'collection-' || loan_id, '', opened_at FROM loans;

-- Attempts are numbered per collection: a loan's second collection starts at 1 again. Their
-- idempotency key (the primary key) carries the collection.
ALTER TABLE contact_attempts DROP CONSTRAINT contact_attempts_loan_id_attempt_no_key;
