"""Notices: letters rendered from templates, stored as files and recorded in the ledger.

A letter names the borrower and their debt: it is created readable by the worker's user only
(0600, in folders of 0700), from its first byte, never widened by the umask nor narrowed after.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import asyncpg
import jinja2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from overdue.languages import ENGLISH, format_amount, format_date, language_for
from overdue.ledger import append_audit
from workflows.commands import NoticeRecord, NoticeRequest
from workflows.money import format_minor

# Owner only: a letter holds the borrower's name, loan and balance.
FOLDER_MODE = 0o700


class NoticeActivities:
    """Renders and files notices. Holds the pool, the template folder and the output folder."""

    def __init__(self, pool: asyncpg.Pool, templates: Path, output: Path) -> None:
        self._pool = pool
        self._templates = letter_templates(templates)
        self._output = output

    @activity.defn(name="serve_notice")
    async def serve_notice(self, request: NoticeRequest) -> NoticeRecord:
        """Render, store and record a notice once; a retry returns the notice already filed."""
        existing = await self._pool.fetchrow(
            "SELECT path, sha256 FROM notices WHERE notice_key = $1", request.notice_key
        )
        if existing is not None:
            return NoticeRecord(request.notice_key, existing["path"], existing["sha256"])
        loan = await self._pool.fetchrow(
            "SELECT l.product, l.jurisdiction, b.name, b.language"
            " FROM loans l JOIN borrowers b USING (borrower_id) WHERE l.loan_id = $1",
            request.loan_id,
        )
        if loan is None:
            raise ApplicationError(
                f"unknown loan {request.loan_id}", type="UnknownLoan", non_retryable=True
            )
        language = language_for(loan["language"], loan["jurisdiction"])
        text = self._templates.get_template(template_name(request.kind, language)).render(
            letter_fields(request, loan["name"], loan["product"], language)
        )
        # The loan's later collections (``L-1~2:legal_notice``) file theirs beside the first's
        # (``legal_notice~2.txt``), which stays as it was served.
        # (A loan id may hold ``:`` itself: the key's collection part follows the loan id.)
        collection = request.notice_key.removeprefix(request.loan_id).split(":", 1)[0]
        path = self._output / request.loan_id / f"{request.kind}{collection}.txt"
        path.parent.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        _write_private(path, text)
        digest = hashlib.sha256(text.encode()).hexdigest()
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await conn.fetchrow(
                "INSERT INTO notices (notice_key, loan_id, kind, path, sha256, issued_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)"
                " ON CONFLICT (notice_key) DO UPDATE SET notice_key = EXCLUDED.notice_key"
                " RETURNING path, sha256",
                request.notice_key,
                request.loan_id,
                request.kind,
                str(path),
                digest,
                request.issued_at,
            )
            await append_audit(
                conn,
                event_key=f"{request.notice_key}:served",
                loan_id=request.loan_id,
                at=request.issued_at,
                action="notice_served",
                details={"kind": request.kind, "sha256": digest},
            )
        assert stored is not None  # RETURNING always yields the row
        return NoticeRecord(request.notice_key, stored["path"], stored["sha256"])


def letter_templates(folder: Path) -> jinja2.Environment:
    """The letter templates in ``folder``: a field a template names and the letter lacks is an
    error, never a blank in a letter that is sent."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )


def letter_fields(
    request: NoticeRequest, borrower_name: str, product: str, language: str
) -> dict[str, object]:
    """What a letter's template may name, written the way ``language`` writes dates and money."""
    return {
        "notice_key": request.notice_key,
        "issued_on": format_date(request.issued_at.date(), language),
        "borrower_name": borrower_name,
        "loan_id": request.loan_id,
        "product": product,
        "outstanding": format_minor(request.outstanding_minor, request.currency),
        "currency": request.currency,
        # The amount with its currency, as the language writes it (人民币5200.00元).
        "amount": format_amount(request.outstanding_minor, request.currency, language),
        "days_past_due": request.days_past_due,
        **request.facts,
    }


def template_name(kind: str, language: str) -> str:
    """The letter's template in ``language``: ``legal_notice.zh-CN.txt.j2``; en-US letters keep
    the plain name they always had (``legal_notice.txt.j2``)."""
    return f"{kind}.txt.j2" if language == ENGLISH else f"{kind}.{language}.txt.j2"


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all, readable by its owner only from the start.

    ``mkstemp`` creates the partial file with mode 0600 and a name no other attempt uses (a
    retry of this activity may run beside a stalled one); the rename then puts the whole letter
    in place, so a crash never leaves a half-written letter behind.
    """
    descriptor, partial = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".partial"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
