"""Prometheus metrics (issue 17), on a registry of each gateway's own (not the global
one: two gateways in a process, or in a test run, never share a counter).

Counters and the send-time histogram count what *this process* did: submits, attempts,
webhook deliveries. Gauges are read from the database at each scrape
(:class:`~callgate.domain.Observation`), so every process, API or worker, reports the
same truth about the queue. Served by ``GET /metrics`` (``callgate serve``) and by
``callgate worker --metrics-port N``; see docs/operations.md for the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, choose_encoder
from prometheus_client.registry import Collector

from callgate.domain import Kind, Observation
from callgate.exceptions import StoreError

log = logging.getLogger("callgate.metrics")
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: claim to the provider's answer: an SMS in a fraction of a second, a fax in minutes
SEND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: how a webhook delivery attempt ended
DELIVERY_RESULTS = ("delivered", "failed", "dead_lettered", "gone")


class Metrics:
    """The metrics of one gateway: counters it increments, gauges it reads at a scrape.

    ``observe`` reads the database's :class:`~callgate.domain.Observation` (it blocks:
    async code renders through the store offload), ``providers`` names the providers this
    gateway sends through (for ``callgate_provider_up``), ``rules`` the alert rules (each
    has a ``callgate_alerts_open`` series, 0 while none of its alerts is open)."""

    def __init__(
        self,
        observe: Callable[[], Observation] | None = None,
        providers: Callable[[], Iterable[str]] = tuple,
        rules: Iterable[str] = (),
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.jobs_submitted = Counter(
            "callgate_jobs_submitted", "Jobs accepted (new, not replays)", ["kind"], registry=r
        )
        for kind in Kind:
            self.jobs_submitted.labels(str(kind))
        self.attempts = Counter(
            "callgate_attempts",
            "Attempts that ended, by outcome (a 429 is rate_limited, not an attempt of the job's)",
            ["kind", "provider", "outcome"],
            registry=r,
        )
        self.send_seconds = Histogram(
            "callgate_send_seconds",
            "Seconds from the claim to the provider's answer (its final status)",
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "callgate_webhook_deliveries",
            "Webhook delivery attempts by result",
            ["result"],
            registry=r,
        )
        for result in DELIVERY_RESULTS:
            self.webhook_deliveries.labels(result)
        if observe is not None:
            r.register(DatabaseGauges(observe, providers, tuple(rules)))

    def __repr__(self) -> str:
        return f"Metrics({self.registry!r})"

    def submitted(self, kind: str, n: int = 1) -> None:
        self.jobs_submitted.labels(kind).inc(n)

    def attempt(self, kind: str, provider: str, outcome: str, seconds: float | None) -> None:
        self.attempts.labels(kind, provider, outcome).inc()
        if seconds is not None:
            self.send_seconds.observe(max(0.0, seconds))

    def delivery(self, result: str) -> None:
        self.webhook_deliveries.labels(result).inc()

    def render(self, accept: str = "") -> bytes:
        """The text exposition format (blocks on the database for the gauges)."""
        return self.exposition(accept)[0]

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The body and its content type for a scrape's ``Accept`` header (Prometheus
        text, or OpenMetrics when asked for: prometheus-client's negotiation)."""
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


class DatabaseGauges(Collector):
    """The gauges, from one observation of the database per scrape."""

    def __init__(
        self,
        observe: Callable[[], Observation],
        providers: Callable[[], Iterable[str]],
        rules: tuple[str, ...] = (),
    ) -> None:
        self._observe, self._providers, self._rules = observe, providers, rules

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration: the database is read at a scrape

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("callgate_database_up", "1 if the database answered this scrape")
        try:
            seen = self._observe()
        except StoreError as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from gauges(seen, self._providers(), self._rules)


def gauges(
    seen: Observation, providers: Iterable[str], rules: Iterable[str] = ()
) -> Iterator[Metric]:
    """The gauge families of one observation."""
    jobs = GaugeMetricFamily("callgate_jobs", "Jobs per non-terminal status", labels=["status"])
    for status, n in sorted(seen.jobs.items()):
        jobs.add_metric([status], n)
    yield jobs
    yield GaugeMetricFamily(
        "callgate_oldest_queued_seconds",
        "How long the oldest job due has waited for a claim (0: none waits)",
        value=seen.oldest_queued_seconds,
    )
    yield GaugeMetricFamily(
        "callgate_breaker_open", "1 while the anomaly breaker is open", value=seen.breaker_open
    )
    up = GaugeMetricFamily(
        "callgate_provider_up", "0 while the provider's circuit is open", labels=["provider"]
    )
    for name in sorted(set(providers) | set(seen.providers_down)):
        up.add_metric([name], 0 if name in seen.providers_down else 1)
    yield up
    rows = GaugeMetricFamily(
        "callgate_batch_rows", "Jobs of each running batch per status", labels=["batch", "status"]
    )
    for batch_id, counts in sorted(seen.batches.items()):
        for status, n in sorted(counts.items()):
            rows.add_metric([str(batch_id), status], n)
    yield rows
    alerts = GaugeMetricFamily("callgate_alerts_open", "Open alerts per rule", labels=["rule"])
    for rule in sorted(set(rules) | set(seen.alerts_open)):
        alerts.add_metric([rule], seen.alerts_open.get(rule, 0))
    yield alerts
    yield GaugeMetricFamily(
        "callgate_dead_letters_last_hour",
        "Jobs that failed for good within the last hour",
        value=seen.dead_letters,
    )


__all__ = ["CONTENT_TYPE", "DatabaseGauges", "Metrics", "gauges"]
