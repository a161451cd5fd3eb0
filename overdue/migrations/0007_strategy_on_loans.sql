-- The strategy each loan is collected by, with its version, so every report can split by them.
-- Loans opened before are recorded with the one strategy there was.
ALTER TABLE loans ADD COLUMN strategy text NOT NULL DEFAULT 'default';
ALTER TABLE loans ADD COLUMN strategy_version text NOT NULL DEFAULT '';
