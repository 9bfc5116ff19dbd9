"""SPIFFE ID parsing: every rejection has its named reason (SPIFFE-ID spec)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isthmus.trust import IsthmusIdentity, Reason, SpiffeId, SpiffeIdError, parse_spiffe_id
from isthmus.trust.spiffe import cluster_ca_id, cluster_of_ca_id

LONG_PATH = "/" + "/".join(["a" * 200] * 10)  # 2010 characters


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", Reason.SPIFFE_EMPTY, id="empty"),
        pytest.param("spiffe://example.org/" + "a" * 2040, Reason.SPIFFE_TOO_LONG, id="over-2048"),
        pytest.param("spiffe://example.org/caf\u00e9", Reason.SPIFFE_NOT_ASCII, id="non-ascii"),
        pytest.param("https://example.org/a", Reason.SPIFFE_BAD_SCHEME, id="https-scheme"),
        pytest.param("SPIFFE://example.org/a", Reason.SPIFFE_BAD_SCHEME, id="uppercase-scheme"),
        pytest.param("spiffe:/example.org/a", Reason.SPIFFE_BAD_SCHEME, id="one-slash"),
        pytest.param("example.org/a", Reason.SPIFFE_BAD_SCHEME, id="no-scheme"),
        pytest.param("spiffe:///a", Reason.SPIFFE_EMPTY_TRUST_DOMAIN, id="empty-trust-domain"),
        pytest.param(
            "spiffe://Example.org/a", Reason.SPIFFE_UPPERCASE_TRUST_DOMAIN, id="uppercase-td"
        ),
        pytest.param(
            "spiffe://exa mple.org/a", Reason.SPIFFE_BAD_TRUST_DOMAIN_CHAR, id="space-in-td"
        ),
        pytest.param(
            "spiffe://exa*mple.org/a", Reason.SPIFFE_BAD_TRUST_DOMAIN_CHAR, id="star-in-td"
        ),
        pytest.param(
            "spiffe://ex%41mple.org/a", Reason.SPIFFE_BAD_TRUST_DOMAIN_CHAR, id="percent-in-td"
        ),
        pytest.param(
            "spiffe://" + "a" * 256 + "/x", Reason.SPIFFE_TRUST_DOMAIN_TOO_LONG, id="td-over-255"
        ),
        pytest.param("spiffe://user@example.org/a", Reason.SPIFFE_USERINFO, id="userinfo"),
        pytest.param("spiffe://example.org:8443/a", Reason.SPIFFE_PORT, id="port"),
        pytest.param("spiffe://example.org/a?x=1", Reason.SPIFFE_QUERY_OR_FRAGMENT, id="query"),
        pytest.param("spiffe://example.org/a#frag", Reason.SPIFFE_QUERY_OR_FRAGMENT, id="fragment"),
        pytest.param("spiffe://example.org", Reason.SPIFFE_EMPTY_PATH, id="no-path"),
        pytest.param("spiffe://example.org/", Reason.SPIFFE_EMPTY_PATH, id="root-path"),
        pytest.param("spiffe://example.org/a/", Reason.SPIFFE_TRAILING_SLASH, id="trailing-slash"),
        pytest.param("spiffe://example.org//a", Reason.SPIFFE_EMPTY_SEGMENT, id="empty-segment"),
        pytest.param("spiffe://example.org/a/./b", Reason.SPIFFE_DOT_SEGMENT, id="dot-segment"),
        pytest.param("spiffe://example.org/a/../b", Reason.SPIFFE_DOT_SEGMENT, id="dotdot-segment"),
        pytest.param("spiffe://example.org/..", Reason.SPIFFE_DOT_SEGMENT, id="dotdot-only"),
        pytest.param(
            "spiffe://example.org/a%2Fb", Reason.SPIFFE_PERCENT_ENCODED, id="percent-slash"
        ),
        pytest.param(
            "spiffe://example.org/%61", Reason.SPIFFE_PERCENT_ENCODED, id="percent-letter"
        ),
        pytest.param("spiffe://example.org/a b", Reason.SPIFFE_BAD_PATH_CHAR, id="space-in-path"),
        pytest.param("spiffe://example.org/a:b", Reason.SPIFFE_BAD_PATH_CHAR, id="colon-in-path"),
        pytest.param("spiffe://example.org/a@b", Reason.SPIFFE_BAD_PATH_CHAR, id="at-in-path"),
    ],
)
def test_refused_with_reason(text: str, reason: Reason) -> None:
    with pytest.raises(SpiffeIdError) as caught:
        parse_spiffe_id(text)
    assert caught.value.reason is reason
    assert reason.value in str(caught.value)


@pytest.mark.parametrize(
    ("text", "trust_domain", "path"),
    [
        pytest.param("spiffe://example.org/a", "example.org", "/a", id="simple"),
        pytest.param("spiffe://a-b_c.d9/A.b-c_D/x", "a-b_c.d9", "/A.b-c_D/x", id="all-chars"),
        pytest.param("spiffe://example.org/...", "example.org", "/...", id="three-dots-ok"),
        pytest.param("spiffe://example.org/.a", "example.org", "/.a", id="leading-dot-ok"),
        pytest.param("spiffe://td" + LONG_PATH, "td", LONG_PATH, id="long-but-legal"),
    ],
)
def test_accepted(text: str, trust_domain: str, path: str) -> None:
    parsed = parse_spiffe_id(text)
    assert parsed == SpiffeId(trust_domain, path)
    assert str(parsed) == text


def test_exactly_2048_bytes_is_accepted() -> None:
    prefix = "spiffe://example.org/"
    text = prefix + "a" * (2048 - len(prefix))
    assert len(text) == 2048
    assert parse_spiffe_id(text).trust_domain == "example.org"
    with pytest.raises(SpiffeIdError) as caught:
        parse_spiffe_id(text + "a")
    assert caught.value.reason is Reason.SPIFFE_TOO_LONG


def test_trust_domain_id_only_when_asked() -> None:
    assert parse_spiffe_id("spiffe://example.org", require_path=False).path == ""
    with pytest.raises(SpiffeIdError):
        parse_spiffe_id("spiffe://example.org/", require_path=False)


def test_isthmus_identity_round_trip() -> None:
    uri = "spiffe://example.org/cluster/west/ns/shop/sa/users"
    identity = IsthmusIdentity.parse(uri)
    assert identity == IsthmusIdentity("example.org", "west", "shop", "users")
    assert identity.uri == uri == str(identity)
    assert identity.spiffe_id.segments == ("cluster", "west", "ns", "shop", "sa", "users")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param(
            "spiffe://example.org/ns/shop/sa/users", Reason.NOT_ISTHMUS_ID, id="no-cluster"
        ),
        pytest.param(
            "spiffe://example.org/cluster/west/ns/shop/sa/users/x",
            Reason.NOT_ISTHMUS_ID,
            id="extra",
        ),
        pytest.param(
            "spiffe://example.org/cluster/west/namespace/shop/sa/u",
            Reason.NOT_ISTHMUS_ID,
            id="wrong-key",
        ),
        pytest.param(
            "spiffe://example.org/cluster/West/ns/shop/sa/users",
            Reason.BAD_NAME,
            id="upper-cluster",
        ),
        pytest.param(
            "spiffe://example.org/cluster/west/ns/-shop/sa/users",
            Reason.BAD_NAME,
            id="bad-namespace",
        ),
        pytest.param(
            "spiffe://example.org/cluster/west/ns/shop/sa/us_ers", Reason.BAD_NAME, id="bad-account"
        ),
        pytest.param("spiffe://example.org/cluster/west", Reason.NOT_ISTHMUS_ID, id="ca-id"),
    ],
)
def test_isthmus_shape_refused(text: str, reason: Reason) -> None:
    with pytest.raises(SpiffeIdError) as caught:
        IsthmusIdentity.parse(text)
    assert caught.value.reason is reason


def test_service_account_may_be_a_subdomain() -> None:
    identity = IsthmusIdentity.parse("spiffe://example.org/cluster/c1/ns/n/sa/my.account")
    assert identity.service_account == "my.account"


def test_cluster_ca_id() -> None:
    ca_id = cluster_ca_id("example.org", "west")
    assert str(ca_id) == "spiffe://example.org/cluster/west"
    assert cluster_of_ca_id(ca_id) == "west"
    assert cluster_of_ca_id(parse_spiffe_id("spiffe://example.org/x/west")) is None
    with pytest.raises(SpiffeIdError):
        cluster_ca_id("example.org", "West")


@given(st.text(max_size=300))
@settings(max_examples=150, deadline=None)
def test_any_string_is_parsed_or_refused_with_a_reason(text: str) -> None:
    try:
        parsed = parse_spiffe_id(text)
    except SpiffeIdError as exc:
        assert isinstance(exc.reason, Reason)
    else:
        assert str(parsed) == text


@given(
    st.from_regex(r"[a-z0-9._-]{1,20}", fullmatch=True),
    st.lists(st.from_regex(r"[a-zA-Z0-9._-]{1,10}", fullmatch=True), min_size=1, max_size=5),
)
@settings(max_examples=60, deadline=None)
def test_well_formed_ids_round_trip(trust_domain: str, segments: list[str]) -> None:
    text = f"spiffe://{trust_domain}/" + "/".join(segments)
    if any(s in (".", "..") for s in segments):
        with pytest.raises(SpiffeIdError):
            parse_spiffe_id(text)
    else:
        assert str(parse_spiffe_id(text)) == text
