"""``overdue report``: portfolio figures from the ledger, as tables, JSON and one HTML page.

``rows`` holds the plain rows the ledger gives and the collections rebuilt from them,
``figures`` the pure computation over them, ``ledger`` the SQL, and ``html`` the page with
its plots. docs/strategies.md ("How to read the report") defines every figure.
"""
