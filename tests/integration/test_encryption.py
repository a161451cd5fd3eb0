"""Payload encryption on the real dev server: the server stores ciphertext, the project reads it.

A loan is collected with encryption on (the production worker in this process, the CLI in
subprocesses, both given the keys); a client without the codec then reads the raw history and
finds only ``binary/encrypted`` payloads and none of the borrower's details. The codec server
decodes what the worker encoded, for the UI's origin and the right token only, and so does
``temporal workflow show --codec-endpoint``. Finally ``overdue up --encrypt`` runs the whole
stack encrypted, and commands from another shell still work.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import pytest_asyncio
from google.protobuf.message import Message
from playwright.async_api import Response, expect
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.worker import Worker

from overdue import client as ops
from overdue.codec import ENCODING, KEY_ID_METADATA, EncryptionCodec, KeyRing, new_key
from overdue.codec_server import run_codec_server
from overdue.config import Config
from overdue.connection import connect
from overdue.stack import EmbeddedStack, free_port, installed_binary, port_is_free
from overdue.worker import build_worker
from tests.integration.browser import ChromiumUnavailable, chromium, ensure_chromium
from tests.integration.support import (
    DEADLINE,
    Cli,
    Loans,
    PersonalDetails,
    daytime_zone,
    eventually,
    running_up,
    start_args,
    terminate_collections,
)
from workflows.collection import LoanCollection, patches
from workflows.types import CollectionInput, CollectionStatus, PaymentReceived, workflow_id_for

pytestmark = pytest.mark.integration

OLD_KEY, ACTIVE_KEY = new_key(), new_key()
KEYS = f"active:{ACTIVE_KEY},old:{OLD_KEY}"
TOKEN = uuid.uuid4().hex
UI_ORIGIN = "http://127.0.0.1:8233"
# The test borrower's details: none may reach the Temporal server in the clear.
BORROWER = PersonalDetails(
    name="Zelda Quixote-Marsh",
    phone="+15557770101",
    references=(
        ("Yusuf Okonkwo-Bright", "+15557770202", "sibling"),
        ("Wanda Fitzgerald-Ng", "+15557770303", "workplace"),
    ),
)


def encrypted_start_args(loan_id: str) -> list[str]:
    """A loan owing 300.00 whose borrower it is daytime for, on a quiet clock."""
    return start_args(
        loan_id,
        name=BORROWER.name,
        phone=BORROWER.phone,
        references=BORROWER.references,
        timezone=daytime_zone(),
        outstanding="300.00",
        principal="300.00",
    )


def payloads_in(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every payload anywhere in ``message``, with its field path."""
    if isinstance(message, Payload):
        yield path, message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        where = f"{path}.{field.name}"
        if field.message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    yield from payloads_in(item, f"{where}[{key}]")
        elif isinstance(value, Message):
            yield from payloads_in(value, where)
        else:
            for index, item in enumerate(value):
                yield from payloads_in(item, f"{where}[{index}]")


def assert_no_pii(raw: bytes, where: str) -> None:
    for detail in BORROWER.pii():
        assert detail.encode() not in raw, f"{detail!r} in {where}"
        # Also not base64-encoded, as protobuf JSON would show bytes.
        assert base64.b64encode(detail.encode())[:12] not in raw, f"{detail!r} (base64) in {where}"


async def raw_histories(client: Client, workflow_id: str) -> list[History]:
    """The stored history of every run of the workflow, as the server holds it."""
    histories = []
    async for execution in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        fetched = await client.get_workflow_handle(
            workflow_id, run_id=execution.run_id
        ).fetch_history()
        histories.append(History(events=fetched.events))
    return histories


def codec_json(payloads: Iterable[Payload]) -> dict[str, Any]:
    """Payloads in the JSON form of the codec server's requests and answers."""
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encrypted_config(config: Config) -> Config:
    return replace(config, encryption_keys=KEYS)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def encrypted_client(encrypted_config: Config) -> Client:
    return await connect(encrypted_config)


@pytest.fixture(scope="module")
def plain_client(client: Client) -> Client:
    """The shared client, which has no codec: it sees what the server stores."""
    return client


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def encrypted_worker(
    encrypted_client: Client, pool: asyncpg.Pool, encrypted_config: Config, loans: Loans
) -> AsyncIterator[Worker]:
    async with build_worker(encrypted_client, pool, encrypted_config) as running:
        yield running
        await terminate_collections(encrypted_client, loans.ids)


@pytest.fixture(scope="module")
def encrypted_cli(encrypted_worker: Worker, stack: EmbeddedStack, overdue_home: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVERDUE_", "TEMPORAL_"))}
    env.update(
        TEMPORAL_ADDRESS=stack.temporal_address,
        DATABASE_URL=stack.database_url,
        OVERDUE_HOME=str(overdue_home),
        OVERDUE_ENCRYPTION_KEYS=KEYS,
    )
    return Cli(env)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cured_loan(
    encrypted_cli: Cli, encrypted_client: Client, pool: asyncpg.Pool, loans: Loans
) -> str:
    """A loan collected encrypted from start to cure: input, a signal, an update, a result."""
    loan_id = loans.new_id("enc")
    started = await encrypted_cli(*encrypted_start_args(loan_id))
    assert started.code == 0, started
    paid = await encrypted_cli(
        "pay", loan_id, "100.00", "--payment-id", f"{loan_id}-p1", "--signal", "--json"
    )
    assert paid.code == 0, paid

    async def first_applied() -> bool:
        view = await ops.loan_status(encrypted_client, pool, loan_id)
        return bool(view.get("applied_payment_ids"))

    await eventually(first_applied, what="the signalled payment applied")
    rest = PaymentReceived(
        payment_id=f"{loan_id}-p2",
        amount_minor=20000,
        currency="USD",
        paid_at=datetime.now(UTC),
        source="bank",
    )
    await ops.record_payment(encrypted_client, pool, loan_id, rest)  # the apply_payment update
    await asyncio.wait_for(
        encrypted_client.get_workflow_handle(workflow_id_for(loan_id)).result(), DEADLINE
    )
    return loan_id


# --- what the server stores -----------------------------------------------------------------

KNOWN_PATCHES = set(patches.ALL)


LOCAL_ACTIVITY_MARKER_DATA = {
    "seq",
    "attempt",
    "activity_id",
    "activity_type",
    "complete_time",
    "backoff",
    "original_schedule_time",
    "activation_index",
}


def _patch_id(payload: Payload) -> str:
    return str(json.loads(payload.data)["id"])


async def test_server_stores_only_ciphertext(cured_loan: str, plain_client: Client) -> None:
    histories = await raw_histories(plain_client, workflow_id_for(cured_loan))
    assert histories
    kinds: set[str] = set()
    for history in histories:
        assert_no_pii(history.SerializeToString(), "the raw history")
        for event in history.events:
            attributes = event.WhichOneof("attributes")
            assert attributes is not None
            # The whole event: its attributes and its user metadata (summaries, details).
            for path, payload in payloads_in(event, attributes):
                if ".search_attributes" in path:
                    continue  # indexed by the server, never encrypted: checked in test_pii
                if path.endswith("details[patch-data].payloads[0]"):
                    # The SDK core writes a patch marker itself, past the codec: it holds only
                    # the patch id (a name in our code).
                    assert _patch_id(payload) in KNOWN_PATCHES, path
                    continue
                if path.endswith("details[data].payloads[0]"):
                    # Likewise a local activity's marker data: its sequence number, id, type
                    # and timing. Its result, under `result`, is encrypted like any payload.
                    assert set(json.loads(payload.data)) <= LOCAL_ACTIVITY_MARKER_DATA, path
                    continue
                assert payload.metadata.get("encoding") == ENCODING, path
                assert payload.metadata.get(KEY_ID_METADATA) == b"active", path
                kinds.add(path.split(".")[1])
    # The workflow input, a signal, an update, the local activities' arguments and results (in
    # their markers) and the result are all among what was checked.
    for wanted in (
        "workflow_execution_started_event_attributes",
        "workflow_execution_signaled_event_attributes",
        "workflow_execution_update_accepted_event_attributes",
        "workflow_execution_completed_event_attributes",
        "marker_recorded_event_attributes",
        "user_metadata",
    ):
        assert wanted in kinds, f"no payloads in {wanted}: {sorted(kinds)}"


async def test_without_the_codec_the_result_cannot_be_read(
    cured_loan: str, plain_client: Client
) -> None:
    with pytest.raises(Exception, match=r"binary/encrypted"):
        await plain_client.get_workflow_handle(workflow_id_for(cured_loan)).result()


async def test_with_the_codec_the_history_decodes(
    cured_loan: str, encrypted_client: Client, plain_client: Client
) -> None:
    (first, *_) = [
        h
        for h in await raw_histories(plain_client, workflow_id_for(cured_loan))
        if h.events[0].workflow_execution_started_event_attributes.input.payloads
    ]
    stored = first.events[0].workflow_execution_started_event_attributes.input.payloads
    (decoded,) = await encrypted_client.data_converter.decode(stored, [CollectionInput])
    assert decoded.loan.borrower.name == BORROWER.name
    assert [c.phone for c in decoded.loan.contacts] == [
        phone for _, phone, _ in BORROWER.references
    ]
    handle = encrypted_client.get_workflow_handle_for(
        LoanCollection.run, workflow_id_for(cured_loan)
    )
    summary = await handle.result()
    assert summary.final_stage == "cured"
    assert summary.payments == 2


async def test_a_key_rotated_out_of_use_still_decrypts(
    cured_loan: str, plain_client: Client
) -> None:
    """After rotation the old key (no longer active) still reads what it encrypted."""
    rotated = EncryptionCodec(KeyRing.parse(f"newer:{new_key()},{KEYS}"))
    history = (await raw_histories(plain_client, workflow_id_for(cured_loan)))[0]
    stored = list(history.events[0].workflow_execution_started_event_attributes.input.payloads)
    decoded = await rotated.decode(stored)
    assert BORROWER.name.encode() in decoded[0].data
    assert (await rotated.encode(decoded))[0].metadata[KEY_ID_METADATA] == b"newer"


async def test_a_bulk_pause_is_sealed_and_read_by_the_workflow(
    encrypted_cli: Cli, encrypted_client: Client, plain_client: Client, loans: Loans
) -> None:
    """The batch job's signal input is encoded with the CLI's codec: the server stores it
    sealed, and the workflow decodes it as any other message."""
    loan_id = loans.new_id("enc-bulk")
    assert (await encrypted_cli(*encrypted_start_args(loan_id))).code == 0
    query = f'LoanId = "{loan_id}"'

    async def visible() -> bool:
        counted = await plain_client.count_workflows(f'WorkflowType = "LoanCollection" AND {query}')
        return counted.count == 1

    await eventually(visible, what="the loan in visibility")
    paused = await encrypted_cli(
        "pause", "--query", query, "--reason", "sealed sweep", "--by", "ops:enc", "--yes", "--json"
    )
    assert paused.code == 0, paused
    assert paused.json()["succeeded"] == 1
    handle = encrypted_client.get_workflow_handle(workflow_id_for(loan_id))

    async def held() -> Any:
        return (await handle.query("status", result_type=CollectionStatus)).hold

    hold = await eventually(held, what="the loan paused")
    assert (hold.operator, hold.reason) == ("ops:enc", "sealed sweep")
    history = (await raw_histories(plain_client, workflow_id_for(loan_id)))[0]
    signals = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    pauses = [s for s in signals if s.signal_name == "pause"]
    assert len(pauses) == 1, signals
    (sealed,) = pauses[0].input.payloads
    assert sealed.metadata.get("encoding") == ENCODING
    assert b"sealed sweep" not in sealed.data


# --- the codec server -----------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def codec_url(encrypted_client: Client) -> AsyncIterator[str]:
    codec = encrypted_client.data_converter.payload_codec
    assert codec is not None
    port = free_port()
    stop = asyncio.Event()
    serving = asyncio.create_task(
        run_codec_server(
            codec, host="127.0.0.1", port=port, origins=[UI_ORIGIN], stop=stop, token=TOKEN
        )
    )
    await eventually(lambda: _true(not port_is_free(port)), what="the codec server listening")
    yield f"http://127.0.0.1:{port}"
    stop.set()
    await serving


async def _true(value: bool) -> bool:
    return value


async def result_payloads(plain_client: Client, loan_id: str) -> dict[str, Any]:
    """The workflow result as the worker encoded it, in the codec server's JSON form."""
    for history in await raw_histories(plain_client, workflow_id_for(loan_id)):
        last = history.events[-1]
        if last.HasField("workflow_execution_completed_event_attributes"):
            return codec_json(last.workflow_execution_completed_event_attributes.result.payloads)
    raise AssertionError("no completed run")


async def test_codec_server_decodes_what_the_worker_encoded(
    cured_loan: str, plain_client: Client, codec_url: str
) -> None:
    body = await result_payloads(plain_client, cured_loan)
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Namespace": "default"}
    async with httpx.AsyncClient(base_url=codec_url) as http:
        decoded = await http.post("/decode", json=body, headers=headers)
        assert decoded.status_code == 200, decoded.text
        (payload,) = decoded.json()["payloads"]
        assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
        summary = json.loads(base64.b64decode(payload["data"]))
        assert summary["loan_id"] == cured_loan
        assert summary["final_stage"] == "cured"
        # Encoding again gives ciphertext under the active key, which decodes back the same.
        encoded = await http.post("/encode", json=decoded.json(), headers=headers)
        assert encoded.status_code == 200
        (sealed,) = encoded.json()["payloads"]
        assert base64.b64decode(sealed["metadata"]["encoding"]) == ENCODING
        again = await http.post("/default/decode", json=encoded.json(), headers=headers)
        assert again.json() == decoded.json()


async def test_codec_server_refuses_a_missing_or_wrong_token(
    cured_loan: str, plain_client: Client, codec_url: str
) -> None:
    body = await result_payloads(plain_client, cured_loan)
    async with httpx.AsyncClient(base_url=codec_url) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = await http.post("/decode", json=body, headers=headers)
            assert refused.status_code == 401, headers
            assert "Zelda" not in refused.text
            assert refused.json() == {"detail": "authorization: a valid bearer token is required"}


async def test_codec_server_bad_input_is_one_clear_line(codec_url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    well_formed = base64.b64encode(b"x").decode()
    cases: list[tuple[bytes, str]] = [
        (b"\xff\xfe{}", "body: is not UTF-8 text (byte 0)"),
        (b"{not json", "body: is not JSON"),
        (b"[]", 'payloads: expected {"payloads": [...]}'),
        (b'{"payloads": {}}', 'payloads: expected {"payloads": [...]}'),
        (b'{"payloads": [1]}', 'payloads: expected {"payloads": [...]}'),
        (b'{"payloads": [{"data": "%%%"}]}', "payloads[0].data: is not base64"),
        (
            json.dumps(
                {"payloads": [{"data": well_formed, "metadata": {"encoding": "a"}}]}
            ).encode(),
            "payloads[0].metadata.encoding: is not base64",
        ),
        (b'{"payloads": [{"data": 5}]}', "payloads[0].data: is not base64"),
        (b'{"payloads": [{"weight": "AA=="}]}', "payloads: "),
    ]
    async with httpx.AsyncClient(base_url=codec_url) as http:
        for body, said in cases:
            for route in ("/decode", "/encode"):
                refused = await http.post(route, content=body, headers=headers)
                assert refused.status_code == 400, (body, refused.text)
                assert refused.json()["detail"].startswith(said), (body, refused.json())
        stranger = {
            "payloads": [
                {
                    "metadata": {
                        "encoding": base64.b64encode(ENCODING).decode(),
                        KEY_ID_METADATA: base64.b64encode(b"gone").decode(),
                    },
                    "data": base64.b64encode(b"x" * 40).decode(),
                }
            ]
        }
        unknown = await http.post("/decode", json=stranger, headers=headers)
        assert unknown.status_code == 400
        assert "key 'gone' is not configured" in unknown.json()["detail"]


async def test_codec_server_takes_the_token_in_the_path_for_the_web_ui(
    cured_loan: str, plain_client: Client, codec_url: str
) -> None:
    body = await result_payloads(plain_client, cured_loan)
    async with httpx.AsyncClient(base_url=codec_url) as http:
        for route in (f"/token/{TOKEN}/decode", f"/token/{TOKEN}/default/decode"):
            decoded = await http.post(route, json=body, headers={"Origin": UI_ORIGIN})
            assert decoded.status_code == 200, (route, decoded.text)
            assert decoded.headers["access-control-allow-origin"] == UI_ORIGIN
        for wrong in ("/token/wrong/decode", "/token/wrong/default/decode", "/default/decode"):
            refused = await http.post(wrong, json=body)
            assert refused.status_code == 401, wrong
            assert "Zelda" not in refused.text


async def test_codec_server_refuses_a_host_it_does_not_serve(
    cured_loan: str, plain_client: Client, codec_url: str
) -> None:
    """DNS rebinding: a page whose name now points at 127.0.0.1 calls the codec server as its
    own origin; its requests carry its own name in Host, and are refused before anything else."""
    body = await result_payloads(plain_client, cured_loan)
    port = codec_url.rsplit(":", 1)[1]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=codec_url) as http:
        for host in (f"evil.example:{port}", "evil.example", "127.0.0.2", f"[::2]:{port}", "::"):
            refused = await http.post("/decode", json=body, headers={**headers, "Host": host})
            assert refused.status_code == 400, host
            assert refused.json()["detail"].startswith("host: "), refused.json()
            assert "Zelda" not in refused.text
        for host in (
            f"127.0.0.1:{port}",
            f"localhost:{port}",
            f"LOCALHOST:{port}",
            f"[::1]:{port}",
        ):
            served = await http.post("/decode", json=body, headers={**headers, "Host": host})
            assert served.status_code == 200, (host, served.text)


async def test_codec_server_cors_allows_the_ui_origin_only(codec_url: str) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    async with httpx.AsyncClient(base_url=codec_url) as http:
        allowed = await http.options("/decode", headers={"Origin": UI_ORIGIN, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == UI_ORIGIN
        assert allowed.headers["access-control-allow-credentials"] == "true"
        allowed_headers = allowed.headers["access-control-allow-headers"].lower()
        for header in ("authorization", "content-type", "x-namespace"):
            assert header in allowed_headers
        for stranger in ("http://evil.example", "http://localhost:9999", "null"):
            refused = await http.options("/decode", headers={"Origin": stranger, **preflight})
            assert "access-control-allow-origin" not in refused.headers, stranger
            posted = await http.post("/decode", json={"payloads": []}, headers={"Origin": stranger})
            assert "access-control-allow-origin" not in posted.headers, stranger


async def test_temporal_cli_shows_the_history_through_the_codec_server(
    cured_loan: str, stack: EmbeddedStack, codec_url: str
) -> None:
    async def show(*extra: str) -> str:
        process = await asyncio.create_subprocess_exec(
            installed_binary("temporal"),
            "workflow",
            "show",
            "--address",
            stack.temporal_address,
            "--workflow-id",
            workflow_id_for(cured_loan),
            "--output",
            "json",
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
        return out.decode()

    def result(shown: str) -> tuple[bytes, bytes]:
        last = json.loads(shown)["events"][-1]
        (payload,) = last["workflowExecutionCompletedEventAttributes"]["result"]["payloads"]
        encoding = base64.b64decode(payload["metadata"]["encoding"])
        return encoding, base64.b64decode(payload["data"])

    assert result(await show())[0] == ENCODING
    encoding, data = result(
        await show("--codec-endpoint", codec_url, "--codec-auth", f"Bearer {TOKEN}")
    )
    assert encoding == b"json/plain"
    assert json.loads(data)["final_stage"] == "cured"


# --- `overdue up --encrypt` -----------------------------------------------------------------


def _up_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OVERDUE_", "TEMPORAL_"))}
    env.pop("DATABASE_URL", None)
    env["OVERDUE_HOME"] = str(home)
    env["OVERDUE_METRICS_ADDRESS"] = "off"
    return env


async def test_up_encrypt_runs_the_stack_encrypted(tmp_path: Path) -> None:
    home = tmp_path / "encrypted-home"
    env = _up_env(home)
    async with running_up(env, "--encrypt") as lines:
        assert any(line.startswith("Codec server") for line in lines), lines

        # The key file: created in the data dir, for its owner only, and recorded for others.
        recorded = json.loads((home / "stack.json").read_text())
        key_file = Path(recorded["encryption_key_file"])
        assert key_file.parent == home
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert recorded["codec_endpoint"].startswith("http://127.0.0.1:")
        # So is the codec server's token, generated for this data dir; stack.json holds
        # neither keys nor token.
        token_file = home / "codec-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert token not in (home / "stack.json").read_text()
        assert any(f"token in {token_file}" in line for line in lines), lines

        # The Web UI is pointed at the codec server, with the token in the endpoint's path:
        # the UI calls <endpoint>/decode and can send no header of ours.
        async with httpx.AsyncClient() as http:
            settings = (await http.get(f"{recorded['ui_url']}/api/v1/settings")).json()
        ui_endpoint = settings["Codec"]["Endpoint"]
        assert ui_endpoint == f"{recorded['codec_endpoint']}/token/{token}"

        # Another shell, with nothing but the data dir, starts and reads a loan.
        loan_id = f"up-enc-{uuid.uuid4().hex[:6]}"
        cli = Cli(env)
        started = await cli(*encrypted_start_args(loan_id))
        assert started.code == 0, started
        status = await eventually(
            lambda: _status(cli, loan_id), what="status of the encrypted loan"
        )
        assert status["loan_id"] == loan_id

        # The server holds ciphertext; the codec server decodes it for the UI's origin.
        plain = await Client.connect(recorded["temporal_address"])
        (history, *_) = await raw_histories(plain, workflow_id_for(loan_id))
        assert_no_pii(history.SerializeToString(), "the raw history under `up --encrypt`")
        (stored,) = history.events[0].workflow_execution_started_event_attributes.input.payloads
        assert stored.metadata["encoding"] == ENCODING
        async with httpx.AsyncClient() as http:
            ui_headers = {"Origin": recorded["ui_url"], "X-Namespace": "default"}
            # Not without the token: a page that finds the port finds nothing readable.
            bare = await http.post(
                f"{recorded['codec_endpoint']}/decode",
                json=codec_json([stored]),
                headers=ui_headers,
            )
            assert bare.status_code == 401, bare.text
            decoded = await http.post(
                f"{ui_endpoint}/decode", json=codec_json([stored]), headers=ui_headers
            )
        assert decoded.status_code == 200, decoded.text
        assert decoded.headers["access-control-allow-origin"] == recorded["ui_url"]
        data = base64.b64decode(decoded.json()["payloads"][0]["data"])
        assert BORROWER.name.encode() in data

        # And the Web UI itself, in a real browser, shows the input decoded through it.
        await _ui_shows_decoded_input(recorded["ui_url"], loan_id)
        await cli("pay", loan_id, "300.00", "--payment-id", f"{loan_id}-p1", "--json")


async def _ui_shows_decoded_input(ui_url: str, loan_id: str) -> None:
    """The workflow's page in the UI of `up --encrypt` shows the borrower's name, which only
    the codec server, called by the browser with the token in the endpoint, can decrypt."""
    try:
        executable = ensure_chromium()
    except ChromiumUnavailable as reason:
        pytest.skip(f"everything but the browser checked; no Chromium: {reason}")
    async with chromium(executable) as browser:
        context = await browser.new_context()
        context.set_default_timeout(60_000)  # the UI's first load compiles a large bundle
        page = await context.new_page()
        decoded: list[tuple[str, int]] = []

        def note(response: Response) -> None:
            # The UI asks `<endpoint>/decode?preserveStorageRefs=true`.
            path = urlsplit(response.url).path
            if path.endswith("/decode"):
                decoded.append((path, response.status))

        page.on("response", note)
        await page.goto(f"{ui_url}/namespaces/default/workflows/{workflow_id_for(loan_id)}")
        await expect(page.get_by_text(BORROWER.name).first).to_be_attached()
        assert decoded, "the name shown without the codec server"
        for path, status in decoded:
            assert path.startswith("/token/") and status == 200, decoded
        await context.close()


async def _status(cli: Cli, loan_id: str) -> dict[str, Any] | None:
    shown = await cli("status", loan_id, "--json")
    return shown.json() if shown.code == 0 else None
