"""Configuration from the environment, in one place.

Three groups of settings are read where they are used instead, each by the one piece that needs
them: how to authenticate to Temporal (the SDK's ``temporalio.envconfig``, in
``overdue.connection.connect_options``), the worker's metrics address (``overdue.metrics``) and the
codec server's allowed origins (``overdue.codec_server``).

``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, ``DATABASE_URL`` and ``OVERDUE_HOME`` are the
contract. When ``TEMPORAL_ADDRESS`` or ``DATABASE_URL`` is set, that component is external and
nothing embedded starts for it. When neither is set, commands use the embedded stack that
``overdue up`` (or ``overdue demo``) runs from the data dir, as recorded in ``stack.json`` there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_HOME = Path(".overdue")
DEFAULT_TEMPORAL_PORT = 7233
DEFAULT_UI_PORT = 8233


@dataclass(frozen=True)
class Config:
    home: Path
    namespace: str = "default"
    temporal_address: str | None = None
    database_url: str | None = None
    simulation_seed: int = 0
    # Payload encryption (overdue/codec.py): key material stays out of reprs and logs.
    encryption_keys: str | None = field(default=None, repr=False)
    encryption_key_file: Path | None = None
    # The HTTP API (overdue/api.py): where it listens (host:port) and its bearer token.
    api_address: str | None = None
    api_token: str | None = field(default=None, repr=False)
    # The codec server's token (overdue/codec_server.py): required by `codec-server`;
    # `up --encrypt` makes one in the data dir when it is unset.
    codec_token: str | None = field(default=None, repr=False)
    # A folder of strategy files and their assignment rules (``assignment.toml``) instead of
    # the packaged ones (``overdue/strategies``): docs/strategies.md.
    strategies_dir: Path | None = None

    @classmethod
    def from_env(cls, home: Path | None = None) -> Config:
        env = os.environ
        return cls(
            home=(home or Path(env.get("OVERDUE_HOME") or DEFAULT_HOME)).absolute(),
            namespace=env.get("TEMPORAL_NAMESPACE") or "default",
            temporal_address=env.get("TEMPORAL_ADDRESS") or None,
            database_url=env.get("DATABASE_URL") or None,
            simulation_seed=int(env.get("OVERDUE_SIM_SEED") or 0),
            api_address=env.get("OVERDUE_API_ADDRESS") or None,
            api_token=env.get("OVERDUE_API_TOKEN") or None,
            codec_token=env.get("OVERDUE_CODEC_TOKEN") or None,
            strategies_dir=Path(env["OVERDUE_STRATEGIES"]).absolute()
            if env.get("OVERDUE_STRATEGIES")
            else None,
            encryption_keys=env.get("OVERDUE_ENCRYPTION_KEYS") or None,
            encryption_key_file=Path(env["OVERDUE_ENCRYPTION_KEY_FILE"])
            if env.get("OVERDUE_ENCRYPTION_KEY_FILE")
            else None,
        )

    @property
    def stack_file(self) -> Path:
        return self.home / "stack.json"

    @property
    def notices_dir(self) -> Path:
        return self.home / "notices"

    def with_running_stack(self) -> Config:
        """Fill in what the environment left open from a running embedded stack, if any."""
        if self.temporal_address and self.database_url:
            return self
        try:
            recorded = json.loads(self.stack_file.read_text())
        except (OSError, ValueError):
            recorded = {}
        return replace(
            self,
            temporal_address=self.temporal_address
            or recorded.get("temporal_address")
            or f"localhost:{DEFAULT_TEMPORAL_PORT}",
            database_url=self.database_url or recorded.get("database_url"),
            # `overdue up --encrypt` records its key file, so other commands read what it wrote.
            encryption_key_file=self.encryption_key_file
            or (
                Path(recorded["encryption_key_file"])
                if recorded.get("encryption_key_file") and not self.encryption_keys
                else None
            ),
        )
