"""The one Temporal connection factory: address, namespace, authentication and payload codec.

The worker, the HTTP API and its outbox relay, the CLI and the benches all connect through
here, so every client reads and writes the same (possibly encrypted) payloads and none of them
imports the worker's wiring to do so. The ledger's pool has its one factory beside the
migrations, ``overdue.db.create_pool``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import Runtime

from overdue.codec import data_converter
from overdue.config import Config


class ConnectionSettingsError(ValueError):
    """The Temporal connection settings (TLS files, API key, profile) are unusable."""


def connect_options(config: Config, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The keyword arguments of ``Client.connect`` for ``config``.

    The address and namespace are the project's (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, or
    the embedded stack). How to authenticate comes from the SDK's own environment configuration
    (``temporalio.envconfig``): ``TEMPORAL_API_KEY``; ``TEMPORAL_TLS``,
    ``TEMPORAL_TLS_CLIENT_CERT_PATH``, ``TEMPORAL_TLS_CLIENT_KEY_PATH``,
    ``TEMPORAL_TLS_SERVER_CA_CERT_PATH`` (or their ``_DATA`` forms), ``TEMPORAL_TLS_SERVER_NAME``;
    ``TEMPORAL_GRPC_META_*``; and a TOML profile when ``TEMPORAL_CONFIG_FILE`` or
    ``TEMPORAL_PROFILE`` names one. The data converter encrypts payloads when keys are configured.

    Args:
        config: The project's configuration, with the Temporal address resolved.
        env: The environment to read (default: this process's).

    Returns:
        The keyword arguments, ready for ``Client.connect(**options)``.

    Raises:
        ConnectionSettingsError: a TLS file cannot be read or a setting is malformed.
        EncryptionKeyError: encryption keys are configured but unusable.
    """
    env = dict(os.environ if env is None else env)
    # A TOML profile is read only when named, so that a developer's default profile (for a cloud
    # namespace, say) never puts TLS on the connection to the embedded dev server.
    named = bool(env.get("TEMPORAL_CONFIG_FILE") or env.get("TEMPORAL_PROFILE"))
    try:
        profile = ClientConfigProfile.load(
            env.get("TEMPORAL_PROFILE") or None, disable_file=not named, override_env_vars=env
        )
        options: dict[str, Any] = dict(profile.to_client_connect_config())
    except (OSError, RuntimeError, ValueError) as problem:
        raise ConnectionSettingsError(f"Temporal connection settings: {problem}") from None
    options.update(
        target_host=config.temporal_address,
        namespace=config.namespace,
        data_converter=data_converter(config),
    )
    return options


async def connect(config: Config, *, runtime: Runtime | None = None) -> Client:
    """Connect to Temporal as configured: address, namespace, TLS or API key, payload codec.

    Every Temporal client of the project comes from here, so all of them read and write the
    same (possibly encrypted) payloads.

    Args:
        config: The project's configuration, with the Temporal address resolved.
        runtime: A worker's runtime, serving its metrics (``overdue.metrics``); without it the
            client uses the SDK's default runtime.

    Returns:
        The connected client.
    """
    assert config.temporal_address is not None
    return await Client.connect(**connect_options(config), runtime=runtime)
