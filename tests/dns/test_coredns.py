"""The CoreDNS stub-domain edit: parse what we emit; idempotent; other blocks untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from isthmus.dns.coredns import forward_targets, parse_server_blocks, with_global_forward
from isthmus.dns.errors import CorefileError

KUBEADM = """.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""


def forward_of(corefile: str) -> list[str]:
    [block] = [b for b in parse_server_blocks(corefile) if b.keys == ("global:53",)]
    lines = [line.split() for line in block.body.strip().splitlines()]
    [fwd] = [parts for parts in lines if parts[0] == "forward"]
    assert fwd[1] == "."
    return fwd[2:]


@pytest.mark.parametrize(
    "corefile",
    [
        pytest.param(KUBEADM, id="kubeadm-default"),
        pytest.param("", id="empty"),
        pytest.param(KUBEADM + "global:53 {\n    forward . 10.0.0.9\n}\n", id="replace-ours"),
        pytest.param(KUBEADM + "global.:53 {\n  errors\n  forward . 1.1.1.1\n}\n",
                     id="replace-trailing-dot"),
        pytest.param("global {\n forward . 9.9.9.9\n}\n" + KUBEADM, id="replace-first-no-port"),
        pytest.param(KUBEADM + "# global:53 { forward . 1.2.3.4 }  (a comment)\n",
                     id="comment-ignored"),
        pytest.param(KUBEADM + 'example.org {\n  template IN A {\n    answer "{{ .Name }} 60 IN A'
                     ' 1.2.3.4"\n  }\n}\n', id="braces-in-quotes"),
    ],
)
def test_adds_exactly_one_block_and_keeps_the_rest(corefile: str) -> None:
    out = with_global_forward(corefile, ["10.96.0.53"])
    assert forward_of(out) == ["10.96.0.53"]
    blocks = parse_server_blocks(out)
    assert sum(1 for b in blocks if any(k.startswith("global") for k in b.keys)) == 1
    others_before = [corefile[b.start:b.end] for b in parse_server_blocks(corefile)
                     if not any(k.startswith("global") for k in b.keys)]
    others_after = [out[b.start:b.end] for b in blocks if b.keys != ("global:53",)]
    assert others_after == others_before  # byte for byte
    assert with_global_forward(out, ["10.96.0.53"]) == out  # idempotent


def test_update_address_and_several_addresses() -> None:
    once = with_global_forward(KUBEADM, ["10.96.0.53"])
    moved = with_global_forward(once, ["10.96.0.54", "fd00::53"])
    assert forward_of(moved) == ["10.96.0.54", "fd00::53"]
    assert moved.count("global:53") == 1


@pytest.mark.parametrize(
    ("corefile", "addresses"),
    [
        pytest.param(KUBEADM + "}", ["10.0.0.1"], id="unbalanced-close"),
        pytest.param(".:53 {\n errors\n", ["10.0.0.1"], id="unbalanced-open"),
        pytest.param(KUBEADM, ["coredns.local"], id="not-an-ip"),
        pytest.param(KUBEADM, [], id="no-address"),
        pytest.param("global:53 example.org {\n forward . 1.1.1.1\n}\n", ["10.0.0.1"],
                     id="shared-block"),
    ],
)
def test_refuses_what_it_cannot_edit_safely(corefile: str, addresses: list[str]) -> None:
    with pytest.raises(CorefileError):
        with_global_forward(corefile, addresses)


def test_manifest_snippet_is_what_the_function_emits() -> None:
    manifest = Path(__file__).resolve().parents[2] / "manifests" / "dns" / "coredns-stub.yaml"
    doc = yaml.safe_load(manifest.read_text())
    corefile = doc["data"]["Corefile"]
    address = forward_of(corefile)
    # install edits the two zones in this order: the manifest is its fixed point
    edited = with_global_forward(corefile, address)
    assert with_global_forward(edited, address, zone="clusterset.local") == corefile
    assert forward_targets(corefile, "clusterset.local") == tuple(address)


@pytest.mark.parametrize(("corefile", "expected"), [
    pytest.param(KUBEADM, None, id="no-global-block"),
    pytest.param(with_global_forward(KUBEADM, ["10.96.0.53"]), ("10.96.0.53",), id="installed"),
    pytest.param("global.:53 {\n  forward . 10.0.0.1 10.0.0.2 # two\n}\n", ("10.0.0.1", "10.0.0.2"),
                 id="two-addresses-and-a-comment"),
    pytest.param("global {\n  errors\n}\n", (), id="block-without-forward"),
    pytest.param("# global:53 { forward . 10.0.0.1 }\n.:53 {\n  forward . /etc/resolv.conf\n}\n",
                 None, id="commented-out"),
    pytest.param("", None, id="empty"),
])
def test_forward_targets(corefile: str, expected: tuple[str, ...] | None) -> None:
    assert forward_targets(corefile) == expected
