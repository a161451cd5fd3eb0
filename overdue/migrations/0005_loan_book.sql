-- The loan book: loans as the lender's core system keeps them, synced in (`overdue loans sync`).
-- The core system stays the source of truth: each loan carries the version it was synced at, and
-- a sync replaces a loan's row, contacts and schedule only with a newer version. The collection
-- ledger (borrowers, loans, contacts in the public schema) is what collections wrote; the book is
-- what the lender says, and the delinquency scan reads it.
CREATE SCHEMA book;

CREATE TABLE book.borrowers (
    borrower_id text PRIMARY KEY,
    name        text NOT NULL,
    phone       text NOT NULL,
    timezone    text NOT NULL,
    synced_at   timestamptz NOT NULL
);

CREATE TABLE book.loans (
    loan_id         text PRIMARY KEY,
    version         integer NOT NULL CHECK (version >= 1),
    borrower_id     text NOT NULL REFERENCES book.borrowers (borrower_id),
    product         text NOT NULL,
    principal_minor bigint NOT NULL CHECK (principal_minor > 0),
    currency        char(3) NOT NULL,
    jurisdiction    text NOT NULL,
    -- A digest of the synced content: the same version sent again with other content is refused.
    content_digest  text NOT NULL,
    synced_at       timestamptz NOT NULL
);
CREATE INDEX book_loans_borrower ON book.loans (borrower_id);

CREATE TABLE book.contacts (
    loan_id    text NOT NULL REFERENCES book.loans (loan_id) ON DELETE CASCADE,
    contact_id text NOT NULL,
    name       text NOT NULL,
    phone      text NOT NULL,
    relation   text NOT NULL,
    PRIMARY KEY (loan_id, contact_id)
);

CREATE TABLE book.instalments (
    loan_id           text NOT NULL REFERENCES book.loans (loan_id) ON DELETE CASCADE,
    seq               integer NOT NULL CHECK (seq >= 1),
    due_date          date NOT NULL,
    amount_due_minor  bigint NOT NULL CHECK (amount_due_minor > 0),
    amount_paid_minor bigint NOT NULL DEFAULT 0
        CHECK (amount_paid_minor >= 0 AND amount_paid_minor <= amount_due_minor),
    PRIMARY KEY (loan_id, seq)
);
-- The scan looks for unpaid instalments by due date.
CREATE INDEX book_instalments_unpaid ON book.instalments (due_date)
    WHERE amount_paid_minor < amount_due_minor;
