"""The generated object names: valid, and injective over (service, cluster) within a
namespace, against adversarial inputs (hypothesis) and the known ambiguous pairs."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isthmus.mirror.names import (
    MAX_NAME,
    MERGED_SUFFIX,
    mirror_service_name,
    pinned_service_name,
    pod_service_name,
)

# Service names are DNS-1035 labels; cluster names DNS-1123 labels (both at most 63).
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_1123 = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"

services = st.from_regex(r"\A[a-z]([-ab0]{0,61}[ab0])?\Z", fullmatch=True) | st.from_regex(
    r"\A[a-z][-a-z0-9]{0,61}[a-z0-9]\Z", fullmatch=True)
clusters = st.from_regex(r"\A[ab0-]{0,61}[ab0]\Z", fullmatch=True).filter(
    lambda c: re.fullmatch(DNS_1123, c) is not None) | st.from_regex(
    rf"\A{DNS_1123}\Z", fullmatch=True)


def name_of(service: str, cluster: str | None) -> str:
    return mirror_service_name(service) if cluster is None else pinned_service_name(service,
                                                                                    cluster)


def decode(name: str) -> tuple[str, str | None] | None:
    """The (service, cluster) a readable name stands for; None for a hashed name."""
    rest, _, last = name.rpartition("-")
    if last == MERGED_SUFFIX:
        return rest, None
    if re.fullmatch(r"c\d+", last):
        n = int(last[1:])
        assert rest[-n - 1] == "-"
        return rest[: -n - 1], rest[-n:]
    assert re.fullmatch(r"h[0-9a-f]{16}", last), name
    return None


@settings(max_examples=1500, deadline=None)
@given(services, st.none() | clusters)
def test_every_name_is_a_valid_service_name_that_decodes_back(service: str,
                                                              cluster: str | None) -> None:
    name = name_of(service, cluster)
    assert len(name) <= MAX_NAME
    assert DNS_1035.match(name), name
    decoded = decode(name)
    if decoded is not None:
        assert decoded == (service, cluster)
    else:
        assert len(f"{service}-{cluster or ''}") > MAX_NAME - 10  # hashed only when too long


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(services, st.none() | clusters), min_size=2, max_size=30,
                unique=True))
def test_distinct_inputs_never_share_a_name(inputs: list[tuple[str, str | None]]) -> None:
    names = [name_of(s, c) for s, c in inputs]
    assert len(set(names)) == len(names), list(zip(inputs, names, strict=True))


@given(st.text(alphabet="ab-", min_size=1, max_size=40))
def test_every_split_of_one_text_gets_its_own_name(text: str) -> None:
    """``<a>-<b>`` split at each of its hyphens, as (service, cluster) and as a merged
    service: the readable forms that collide when names are simply joined."""
    joined = f"x{text}x"
    candidates: list[tuple[str, str | None]] = [(joined, None)]
    for i, ch in enumerate(joined):
        if ch == "-" and joined[i - 1] != "-" and joined[i + 1] != "-":
            candidates.append((joined[:i], joined[i + 1:]))
    names = [name_of(s, c) for s, c in candidates]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(("web", "east"), ("web-east", None), id="pinned-vs-merged"),
        pytest.param(("a-b", "c"), ("a", "b-c"), id="pinned-split"),
        pytest.param(("web", "global"), ("web-global", None), id="cluster-named-global"),
        pytest.param(("s" * 60, "a"), ("s" * 60, "b"), id="long-pinned"),
        pytest.param(("s" * 60, None), ("s" * 61, None), id="long-merged"),
        pytest.param(("s" * 45, "c" * 63), ("s" * 45, "c" * 62), id="long-same-prefix"),
    ],
)
def test_known_ambiguous_pairs_differ(a: tuple[str, str | None],
                                      b: tuple[str, str | None]) -> None:
    assert name_of(*a) != name_of(*b)


def test_readable_names() -> None:
    assert mirror_service_name("users") == "users-global"
    assert pinned_service_name("users", "west") == "users-west-c4"
    assert pinned_service_name("web", "east") != mirror_service_name("web-east")


pods = st.from_regex(r"\A[ab0-]{0,61}[ab0]\Z", fullmatch=True).filter(
    lambda c: re.fullmatch(DNS_1123, c) is not None) | st.from_regex(
    rf"\A{DNS_1123}\Z", fullmatch=True)


def decode_pod(name: str) -> tuple[str, str, str] | None:
    """The (service, pod, cluster) a readable per-pod name stands for; None when hashed."""
    rest, _, last = name.rpartition("-")
    match = re.fullmatch(r"p(\d+)x(\d+)", last)
    if match is None:
        assert re.fullmatch(r"h[0-9a-f]{16}", last), name
        return None
    m, n = int(match[1]), int(match[2])
    cluster, rest = rest[len(rest) - n:], rest[: len(rest) - n]
    assert rest.endswith("-")
    rest = rest[:-1]
    pod, rest = rest[len(rest) - m:], rest[: len(rest) - m]
    assert rest.endswith("-")
    return rest[:-1], pod, cluster


@settings(max_examples=1500, deadline=None)
@given(services, pods, clusters)
def test_every_pod_name_is_valid_and_decodes_back(service: str, pod: str, cluster: str) -> None:
    name = pod_service_name(pod, service, cluster)
    assert len(name) <= MAX_NAME
    assert DNS_1035.match(name), name
    decoded = decode_pod(name)
    if decoded is not None:
        assert decoded == (service, pod, cluster)
    else:
        assert len(f"{service}-{pod}-{cluster}") > MAX_NAME - 10


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(services, pods, clusters), min_size=2, max_size=30, unique=True),
       st.lists(st.tuples(services, st.none() | clusters), max_size=30))
def test_pod_names_never_collide_with_each_other_or_service_names(
        inputs: list[tuple[str, str, str]], others: list[tuple[str, str | None]]) -> None:
    pod_names = [pod_service_name(p, s, c) for s, p, c in inputs]
    assert len(set(pod_names)) == len(pod_names)
    assert not set(pod_names) & {name_of(s, c) for s, c in others}


@pytest.mark.parametrize(
    ("args", "name"),
    [
        pytest.param(("db-0", "db", "east"), "db-db-0-east-p4x4", id="statefulset-pod"),
        pytest.param(("0", "kafka", "west-2"), "kafka-0-west-2-p1x6", id="digit-hostname"),
    ],
)
def test_pod_name_examples(args: tuple[str, str, str], name: str) -> None:
    assert pod_service_name(*args) == name
