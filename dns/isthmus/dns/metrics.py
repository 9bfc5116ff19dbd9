"""Prometheus metrics of the responder, read from ``Responder.stats`` at scrape time.

The hot path only bumps plain integers (a Prometheus counter per query would cost more
than a cached answer); this collector turns them into metrics when scraped.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from isthmus.dns.responder import Responder


class ResponderCollector(Collector):
    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    def collect(self) -> Iterator[Metric]:
        stats = self.responder.stats
        outcomes = dict(stats.outcomes)  # one C-level copy: safe against the loop thread
        total = CounterMetricFamily("isthmus_dns_queries", "Messages received (UDP and TCP).")
        total.add_metric([], stats.queries + stats.cache_hits)
        yield total
        hits = CounterMetricFamily("isthmus_dns_cache_hits", "Answers served from the cache.")
        hits.add_metric([], stats.cache_hits)
        yield hits
        slow = CounterMetricFamily(
            "isthmus_dns_slow_path_outcomes",
            "Slow-path verdicts: rcode names, truncated, dropped_<why>, tcp_* and "
            "internal_error.", labels=["outcome"])
        for outcome, count in sorted(outcomes.items()):
            slow.add_metric([outcome], count)
        yield slow
        snapshot = self.responder.snapshot
        names = GaugeMetricFamily("isthmus_dns_names", "Owner names in the current snapshot.")
        names.add_metric([], len(snapshot.names))
        yield names
        generation = GaugeMetricFamily("isthmus_dns_snapshot_generation",
                                       "Generation of the snapshot being served.")
        generation.add_metric([], snapshot.generation)
        yield generation
        cache = GaugeMetricFamily("isthmus_dns_cache_entries", "Entries in the answer cache.")
        cache.add_metric([], self.responder.cache_size())
        yield cache


def registry_for(responder: Responder) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResponderCollector(responder))
    return registry


def serve_metrics(responder: Responder, address: str, port: int) -> None:
    """Serve /metrics from a daemon thread (prometheus_client's own small server)."""
    start_http_server(port, address, registry=registry_for(responder))
