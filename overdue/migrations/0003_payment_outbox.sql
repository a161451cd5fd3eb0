-- The payment outbox: every payment reported by a payment service (HTTP API, bank file) is stored
-- here first, in its own committed transaction, and only then delivered to the loan's collection.
-- A payment accepted while Temporal is unreachable waits here until a relay delivers it.
--
-- The payment id is the idempotency key: a payment id is stored once, and the same id with
-- another loan, amount or currency is refused. Delivery may be repeated (a relay that crashed
-- mid-delivery, a lease that ran out); the collection and the `payments` table apply a payment
-- id once, so a repeat changes nothing.
CREATE TABLE payment_outbox (
    payment_id      text PRIMARY KEY,
    -- No foreign key to `loans`: a collection started moments ago may not be in the ledger yet.
    loan_id         text NOT NULL,
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    paid_at         timestamptz NOT NULL,
    source          text NOT NULL,
    reference       text,
    -- pending: not yet delivered; delivered: the collection (or the ledger) took it, `result`
    -- holds its answer; rejected: it refused it for good, `last_error` says why.
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'rejected')),
    attempts        integer NOT NULL DEFAULT 0,
    -- For a pending payment, when a relay may next claim it: a claim pushes it past the
    -- delivery's deadline (a lease), a failed attempt sets the backoff.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    result          jsonb,
    received_at     timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX payment_outbox_due ON payment_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX payment_outbox_loan ON payment_outbox (loan_id);
