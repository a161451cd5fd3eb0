import uuid
from datetime import UTC, datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from overdue.worker import build_worker
from workflows.loan_collection import LoanCollection
from workflows.types import TASK_QUEUE, Borrower, CollectionInput, Loan, workflow_id_for


async def test_smoke(time_env: WorkflowEnvironment, pool, config):
    loan_id = f"L-{uuid.uuid4().hex[:8]}"
    now = await time_env.get_current_time()
    due = (now - timedelta(days=1)).date().isoformat()
    loan = Loan(
        loan_id=loan_id,
        borrower=Borrower(f"never_answers-{loan_id}", "Ann Lee", "+15550001", "America/New_York"),
        product="personal",
        principal_minor=100000,
        outstanding_minor=50000,
        currency="USD",
        due_date=due,
        jurisdiction="us",
    )
    async with build_worker(time_env.client, pool, config):
        handle = await time_env.client.start_workflow(
            LoanCollection.run, CollectionInput(loan=loan), id=workflow_id_for(loan_id), task_queue=TASK_QUEUE
        )
        result = await handle.result()
        print(result)
