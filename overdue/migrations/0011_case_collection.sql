-- Which of the loan's collections opened each case. A complaint outlives its collection; once a
-- later collection of the loan runs (the loan fell overdue again after a cure), that workflow
-- does not hold the earlier complaint, so operators' actions on it and its escalation are the
-- ledger's to write, as for a loan that has closed (``overdue.cases``).
ALTER TABLE cases ADD COLUMN collection integer;
-- Every case id starts with its collection's key (``workflows.types.collection_key``): the loan id
-- for the first collection, ``<loan id>~<n>`` for a later one.
UPDATE cases SET collection = CASE
    WHEN substr(case_id, length(loan_id) + 1, 1) = '~'
        THEN split_part(substr(case_id, length(loan_id) + 2), ':', 1)::integer
    ELSE 1
END;
-- Left nullable for a rolling deploy: a worker still on the code from before writes a case
-- without it. Such a case counts as the running collection's, and the next change that code of
-- this version writes to it fills the column in (``overdue.cases.record_change``).
ALTER TABLE cases ADD CHECK (collection >= 1);
