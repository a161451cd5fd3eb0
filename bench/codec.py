"""What payload encryption costs: bytes added and time per payload, encoding and decoding.

    .venv/bin/python bench/codec.py [--payloads 20000]

It encrypts a real workflow input (a ``CollectionInput`` with a borrower and two references, as
the default converter serializes it) with a fresh key, one payload at a time as the SDK hands
them over, and prints the size before and after and the microseconds per payload each way.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from temporalio.converter import DataConverter

from overdue.codec import EncryptionCodec, KeyRing, new_key
from workflows.types import Borrower, CollectionInput, Contact, Loan


def _input() -> CollectionInput:
    return CollectionInput(
        loan=Loan(
            loan_id="L-100042",
            borrower=Borrower("B-77", "Ann Lee", "+15550100100", "America/New_York"),
            product="personal",
            principal_minor=500_000,
            outstanding_minor=125_000,
            currency="USD",
            due_date="2026-11-01",
            jurisdiction="us",
            contacts=[
                Contact("R1", "Bo Lee", "+15550100101", "sibling"),
                Contact("R2", "Cy Diaz", "+15550100102", "workplace"),
            ],
        )
    )


async def main(count: int) -> None:
    [plain] = DataConverter.default.payload_converter.to_payloads([_input()])
    codec = EncryptionCodec(KeyRing.parse(f"bench:{new_key()}"))
    started = time.perf_counter()
    for _ in range(count):
        [encrypted] = await codec.encode([plain])
    encoding = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(count):
        [decrypted] = await codec.decode([encrypted])
    decoding = time.perf_counter() - started
    assert decrypted == plain
    print(
        f"payload {plain.ByteSize()} bytes -> {encrypted.ByteSize()} bytes encrypted;"
        f" encode {encoding / count * 1e6:.1f} µs, decode {decoding / count * 1e6:.1f} µs"
        f" per payload ({count} each way)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payloads", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().payloads))
