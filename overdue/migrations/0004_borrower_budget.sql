-- The borrower-level contact budget: limits set per person or per phone number hold across all
-- of a borrower's loans. Phone numbers are counted by key (a digest of the E.164 number, see
-- workflows/budget.py), so the budget tables hold no number.

-- The key of a phone number, as workflows/budget.py `number_key` computes it: "n-" and the first
-- 20 hex digits of the SHA-256 of the number's digits, with its leading "+" when it has one.
-- Used here to key the attempts recorded before this migration; a test keeps the two equal.
CREATE FUNCTION phone_number_key(phone text) RETURNS text AS $$
    SELECT 'n-' || left(encode(sha256(convert_to(
        CASE WHEN btrim(phone) LIKE '+%' THEN '+' ELSE '' END
        || regexp_replace(phone, '[^0-9]', '', 'g'), 'UTF8')), 'hex'), 20)
$$ LANGUAGE sql IMMUTABLE STRICT;

-- Who each attempt was about and which number it reached, filled in for the attempts already
-- recorded, so that an objection or a conversation from before counts across loans too.
ALTER TABLE contact_attempts
    ADD COLUMN borrower_id     text,
    ADD COLUMN number_key      text,
    ADD COLUMN reservation_key text;
UPDATE contact_attempts a SET borrower_id = l.borrower_id
    FROM loans l WHERE l.loan_id = a.loan_id;
UPDATE contact_attempts a SET number_key = phone_number_key(b.phone)
    FROM loans l JOIN borrowers b USING (borrower_id)
    WHERE l.loan_id = a.loan_id AND a.target = 'borrower';
UPDATE contact_attempts a SET number_key = phone_number_key(c.phone)
    FROM contacts c
    WHERE c.loan_id = a.loan_id AND c.contact_id = a.target_id AND a.target = 'contact';
CREATE INDEX contact_attempts_borrower ON contact_attempts (borrower_id, at_utc);
CREATE INDEX contact_attempts_number ON contact_attempts (number_key, at_utc);
-- Every check of the budget finds the borrower's loans.
CREATE INDEX loans_borrower ON loans (borrower_id);

-- A conversation reported by a person or a dialer (not the workflow's own answered call) that
-- counts for the conversation rules: right party, by phone.
ALTER TABLE contact_outcomes
    ADD COLUMN channel      text,
    ADD COLUMN conversation boolean NOT NULL DEFAULT false;

-- A contact a loan has planned and holds a place in the budget for. Taken and checked under the
-- borrower's and the number's advisory locks, so two loans never both take the last place.
-- `held` until the contact is made (`used`) or the loan plans another (`released`). A place
-- never used stops counting at `expires_at` (collection time), or as soon as its loan is
-- closed in the ledger: a crashed worker or a loan cured meanwhile blocks nothing for long. A
-- place confirmed at the contact counts until its contact is recorded (for a day at most).
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
