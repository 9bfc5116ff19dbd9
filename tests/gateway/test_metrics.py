"""Stream metrics: the labelled series looked up once are the registry's own series."""

from __future__ import annotations

from isthmus.gateway.metrics import Metrics, record_stream
from isthmus.gateway.tunnel import StreamStats


def _value(m: Metrics, name: str, labels: dict[str, str]) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_child_is_the_labelled_series() -> None:
    m = Metrics()
    child = m.child(m.connections, "outbound", "east", "web.shop", "ok")
    assert child is m.child(m.connections, "outbound", "east", "web.shop", "ok")
    assert child is m.connections.labels("outbound", "east", "web.shop", "ok")
    other = m.child(m.bytes, "outbound", "east", "web.shop", "ok")  # same values, other metric
    assert other is not child


def test_record_stream_counts_every_stream() -> None:
    m = Metrics()
    for sent, received, result in ((10, 20, ""), (5, 0, ""), (0, 7, "plain_reset")):
        stats = StreamStats(0.0)
        stats.service, stats.peer_cluster, stats.result = "web.shop", "east", result
        stats.bytes_to_tunnel, stats.bytes_from_tunnel = sent, received
        record_stream(m, "outbound", stats)
    base = {"direction": "outbound", "peer_cluster": "east", "service": "web.shop"}
    assert _value(m, "isthmus_gateway_connections_total", {**base, "result": "ok"}) == 2
    assert _value(m, "isthmus_gateway_connections_total",
                  {**base, "result": "plain_reset"}) == 1
    assert _value(m, "isthmus_gateway_bytes_total", {**base, "way": "sent"}) == 15
    assert _value(m, "isthmus_gateway_bytes_total", {**base, "way": "received"}) == 27
