"""The ``LoanCollection`` workflow, one module per role.

- ``workflow``: the handlers, the main loop and continue-as-new, and nothing else;
- ``inbox``: the messages received and waiting to be applied;
- ``reports``: payments, outcomes, decisions and holds, applied in order;
- ``events``: events into the collection machine, and what its states call for (promises, plans,
  death verification, stage changes);
- ``contacts``: planning the next contact within the borrower's budget, and making it;
- ``letters``: notices served once;
- ``view``: the ``status`` query, search attributes and the Web UI's details;
- ``rules``: the collection's own rules as pure functions (deadlines, pauses, plans, payments);
- ``context``: ``Collection``, the loan being collected, as every step reads it.
"""

from workflows.collection.workflow import LoanCollection

__all__ = ["LoanCollection"]
