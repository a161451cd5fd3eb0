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
