"""The worker's Prometheus endpoint: the Temporal SDK's metrics and the product's, on one page.

The SDK's runtime serves them. A worker whose client is connected with ``worker_runtime()``
exposes the SDK's own metrics (``temporal_...``: polls, task latencies, activity outcomes) and
those the activities record (``overdue_...``, see ``activities.metrics``) at
``http://OVERDUE_METRICS_ADDRESS/metrics``. The CLI's short-lived clients use the default runtime,
which has no exporter.

An address set in ``OVERDUE_METRICS_ADDRESS`` is kept or the worker does not start: Prometheus is
configured to scrape it. Left unset, the endpoint is like the embedded stack's ports: the default
when it is free, another free port on 127.0.0.1 when it is not (a second worker on a developer's
machine), and the URL printed says which.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from activities.metrics import HISTOGRAM_BUCKETS
from overdue.stack import port_or_free

ADDRESS_VARIABLE = "OVERDUE_METRICS_ADDRESS"
DEFAULT_PORT = 9464  # the OpenTelemetry Prometheus exporter's customary port
OFF = "off"


class MetricsUnavailable(RuntimeError):
    """The metrics endpoint cannot be served at the configured address."""


def metrics_url(address: str) -> str:
    """The URL Prometheus scrapes for an endpoint bound to ``address``."""
    host, _, port = address.rpartition(":")
    if host in ("0.0.0.0", "[::]", ""):
        host = "127.0.0.1"  # bound to every interface: this machine's own is one of them
    return f"http://{host}:{port}/metrics"


def prometheus_runtime(address: str) -> Runtime:
    """A Temporal runtime whose metrics, SDK and product alike, are served at ``address``.

    Args:
        address: An IP address and port, e.g. ``127.0.0.1:9464`` or ``0.0.0.0:9464`` (the SDK
            takes no host names).

    Raises:
        MetricsUnavailable: The address is taken or cannot be bound.
    """
    try:
        return Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(
                    bind_address=address,
                    histogram_bucket_overrides={
                        name: list(buckets) for name, buckets in HISTOGRAM_BUCKETS.items()
                    },
                )
            )
        )
    except ValueError as problem:  # the SDK's words for a bind failure or a malformed address
        raise MetricsUnavailable(
            f"{ADDRESS_VARIABLE}: cannot serve metrics at {address} ({problem}); "
            f"set it to a free IP:port, or to {OFF!r}"
        ) from None


def worker_runtime(environ: Mapping[str, str] = os.environ) -> tuple[Runtime | None, str | None]:
    """The runtime a long-running worker connects with, and the URL of its metrics.

    Returns:
        ``(runtime, url)``, or ``(None, None)`` when metrics are off: the SDK's default runtime
        serves none.

    Raises:
        MetricsUnavailable: The configured address cannot be bound.
    """
    address = environ.get(ADDRESS_VARIABLE, "").strip()
    if address.lower() == OFF:
        return None, None
    if not address:
        address = f"127.0.0.1:{port_or_free(DEFAULT_PORT)}"
    return prometheus_runtime(address), metrics_url(address)
