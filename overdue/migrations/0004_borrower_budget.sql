-- The borrower-level contact budget: limits set per person or per phone number hold across all
-- of a borrower's loans. Phone numbers are counted by key (a digest of the E.164 number, see
-- workflows/budget.py), so the budget tables hold no number.

-- Who each attempt was about and which number it reached. Attempts recorded before this
-- migration have neither, and count only for their own loan.
ALTER TABLE contact_attempts
    ADD COLUMN borrower_id     text,
    ADD COLUMN number_key      text,
    ADD COLUMN reservation_key text;
CREATE INDEX contact_attempts_borrower ON contact_attempts (borrower_id, at_utc);
CREATE INDEX contact_attempts_number ON contact_attempts (number_key, at_utc);

-- A conversation reported by a person or a dialer (not the workflow's own answered call) that
-- counts for the conversation rules: right party, by phone.
ALTER TABLE contact_outcomes
    ADD COLUMN channel      text,
    ADD COLUMN conversation boolean NOT NULL DEFAULT false;

-- A contact a loan has planned and holds a place in the budget for. Taken and checked under the
-- borrower's and the number's advisory locks, so two loans never both take the last place.
-- `held` until the contact is made (`used`), the loan plans another (`released`), or, never
-- used, it lapses by itself at `expires_at` (collection time): a crashed worker or a loan cured
-- meanwhile leaks nothing.
CREATE TABLE contact_reservations (
    reservation_key text PRIMARY KEY,
    loan_id         text NOT NULL REFERENCES loans (loan_id),
    borrower_id     text NOT NULL,
    number_key      text NOT NULL,
    channel         text NOT NULL,
    target          text NOT NULL,
    target_id       text NOT NULL,
    at              timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'used', 'released')),
    -- Set when the channel activity confirmed the place and went on to dial: a retry of that
    -- activity (the call may already have been made) goes on without a second check.
    confirmed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_at >= at)
);
CREATE INDEX contact_reservations_borrower ON contact_reservations (borrower_id, expires_at)
    WHERE status = 'held';
CREATE INDEX contact_reservations_number ON contact_reservations (number_key, expires_at)
    WHERE status = 'held';
CREATE INDEX contact_reservations_loan ON contact_reservations (loan_id) WHERE status = 'held';
