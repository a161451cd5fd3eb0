-- The language a borrower is written to in (a BCP 47 tag: zh-CN, en-US), in the loan book and the
-- ledger. Empty means the jurisdiction's default: rows written before the column, and loans
-- started without one, are still written to in the language of their jurisdiction.
ALTER TABLE book.borrowers ADD COLUMN language text NOT NULL DEFAULT '';
ALTER TABLE borrowers ADD COLUMN language text NOT NULL DEFAULT '';
