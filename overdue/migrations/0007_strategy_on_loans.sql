-- The strategy each loan is collected by, with its version, so every report can split by them.
-- Loans opened before are recorded with the one strategy there was.
ALTER TABLE loans ADD COLUMN strategy text NOT NULL DEFAULT 'default';
ALTER TABLE loans ADD COLUMN strategy_version text NOT NULL DEFAULT '';
-- The segment of the assignment rules that chose it ('' when none did), and whether it is the
-- segment's champion or a challenger.
ALTER TABLE loans ADD COLUMN strategy_segment text NOT NULL DEFAULT '';
ALTER TABLE loans ADD COLUMN strategy_champion boolean NOT NULL DEFAULT true;

-- The lender's risk score of a loan of the book, when it has one (strategies may be assigned by it).
ALTER TABLE book.loans ADD COLUMN risk_score integer CHECK (risk_score >= 0);
