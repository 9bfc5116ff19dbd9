"""``isthmus trust``: the root, cluster CAs, bundles, and looking at certificates.

Output meant for ``kubectl apply -f -`` goes to stdout; logs go to stderr (JSON, level
``warning`` unless ``--log-level`` says otherwise), so a pipe only ever carries YAML.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click
from cryptography import x509

from isthmus.logging import configure
from isthmus.trust import files
from isthmus.trust.bundle import TrustBundle
from isthmus.trust.ca import (
    INTERMEDIATE_LIFETIME,
    ROOT_LIFETIME,
    create_cluster_ca,
    create_root,
    utcnow,
)
from isthmus.trust.describe import chain_verdict, describe_cert
from isthmus.trust.errors import ApplyError, ExpiryError, MaterialError
from isthmus.trust.expiry import EXIT_ERROR, WARN_WITHIN, Level, check_expiry, exit_code
from isthmus.trust.issuer import LEAF_LIFETIME, Issuer
from isthmus.trust.manifests import (
    NAMESPACE,
    bundle_configmap,
    cluster_ca_from_secret,
    cluster_ca_secret,
    leaf_secret,
    to_yaml,
)
from isthmus.trust.pem import load_certs

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _when(value: str | None) -> dt.datetime:
    if value is None:
        return utcnow()
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint="--at") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _apply(context: str | None, kubeconfig: str | None, objects: list[dict[str, Any]]) -> None:
    try:
        from isthmus.kube.apply import apply_manifests
    except ImportError as exc:
        raise ApplyError("applying needs isthmus.kube (not available)") from exc
    apply_manifests(context, kubeconfig, objects)


def _emit(
    objects: list[dict[str, Any]],
    *,
    out: Path | None,
    context: str | None,
    kubeconfig: str | None,
    secret: bool,
) -> None:
    if context is not None and out is not None:
        raise click.UsageError("give --out or --context, not both")
    if context is not None:
        _apply(context, kubeconfig, objects)
        names = ", ".join(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
        click.echo(f"applied {names} to context {context}", err=True)
        return
    text = to_yaml(objects).encode("utf-8")
    if out is None:
        click.echo(text.decode("utf-8"), nl=False)
    elif secret:
        files.write_private(out, text)
        click.echo(f"wrote {out} (mode 0600: it holds a private key)", err=True)
    else:
        files.write_public(out, text)
        click.echo(f"wrote {out}", err=True)


def _collect_roots(paths: tuple[Path, ...]) -> list[x509.Certificate]:
    roots: list[x509.Certificate] = []
    for path in paths:
        source = path / files.ROOT_CERT if path.is_dir() else path
        roots.extend(load_certs(files.read_bytes(source), what=str(source)))
    return roots


_out_option = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the manifest to this file instead of stdout.",
)
_context_option = click.option(
    "--context",
    metavar="NAME",
    help="Apply to the cluster of this kubeconfig context instead of printing.",
)
_kubeconfig_option = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    help="Kubeconfig file for --context (default: $KUBECONFIG or ~/.kube/config).",
)
_at_option = click.option(
    "--at", "at", metavar="TIME", help="Judge validity at this ISO 8601 time instead of now."
)


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log level (logs go to stderr as JSON).",
)
def group(log_level: str) -> None:
    """Manage the shared trust root, cluster CAs and trust bundles.

    \b
    One root (kept offline) signs one intermediate CA per cluster; each
    cluster's mirror issues 24-hour leaves from its intermediate. Identities:
      spiffe://<trust-domain>/cluster/<cluster>/ns/<namespace>/sa/<account>

    \b
    Set-up (after `isthmus install`, which creates the namespace):
      isthmus trust init --trust-domain example.org --out ./root
      isthmus trust cluster-ca --root ./root --cluster west | kubectl --context west apply -f -
      isthmus trust bundle --root ./root | kubectl --context west apply -f -
    """
    configure(log_level)


@group.command(short_help="Create the root CA (ECDSA P-256, 10 years).")
@click.option("--trust-domain", required=True, help="SPIFFE trust domain, e.g. example.org.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for root.crt and root.key (created, mode 0700).",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=ROOT_LIFETIME.days,
    show_default=True,
    help="Validity of the root.",
)
@click.option("--force", is_flag=True, help="Replace a root that already exists in --out.")
def init(trust_domain: str, out: Path, days: int, force: bool) -> None:
    """Create the root CA (ECDSA P-256) in the --out directory.

    root.key is written with mode 0600. Keep it offline: it is needed again only to sign
    cluster CAs. An existing root is never overwritten without --force.
    """
    files.refuse_existing_root(out, force=force)  # before generating anything
    root = create_root(trust_domain, lifetime=dt.timedelta(days=days))
    cert_path, key_path = files.save_root(out, root, force=force)
    click.echo(f"root:        {cert_path}")
    click.echo(f"key:         {key_path} (mode 0600; keep it offline)")
    click.echo(f"trust domain {trust_domain}")
    click.echo(f"fingerprint sha256:{root.fingerprint}")
    click.echo(f"valid until {root.cert.not_valid_after_utc.isoformat()}")


@group.command(
    "cluster-ca", short_help="Sign a cluster's intermediate CA; print or apply its Secret."
)
@click.option("--cluster", required=True, help="Cluster name (a DNS label), e.g. west.")
@click.option(
    "--root",
    "root_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Directory holding root.crt and root.key (from `init`).",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=INTERMEDIATE_LIFETIME.days,
    show_default=True,
    help="Validity of the cluster CA (cut to the root's end).",
)
@click.option("--namespace", default=NAMESPACE, show_default=True, help="Namespace of the Secret.")
@_out_option
@_context_option
@_kubeconfig_option
def cluster_ca(
    *,
    cluster: str,
    root_dir: Path,
    days: int,
    namespace: str,
    out: Path | None,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Sign an intermediate CA for one cluster; print its Secret (or apply it).

    The Secret is isthmus-cluster-ca in isthmus-system (type kubernetes.io/tls: tls.crt,
    tls.key, and ca.crt holding the root). The intermediate has path length 0 and may only
    sign identities of its own cluster. With --out the file is written mode 0600.
    """
    root = files.load_root(root_dir)
    ca = create_cluster_ca(root, cluster, lifetime=dt.timedelta(days=days))
    secret = cluster_ca_secret(ca, root.cert_pem(), namespace=namespace)
    _emit([secret], out=out, context=context, kubeconfig=kubeconfig, secret=True)


@group.command(short_help="Build the trust bundle ConfigMap from one or more roots.")
@click.option(
    "--root",
    "roots",
    required=True,
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="A root certificate (PEM), or a directory from `init`. Repeat to hold several.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["configmap", "pem"]),
    default="configmap",
    show_default=True,
    help="A ConfigMap manifest, or the bare PEM roots.",
)
@click.option(
    "--namespace", default=NAMESPACE, show_default=True, help="Namespace of the ConfigMap."
)
@_out_option
@_context_option
@_kubeconfig_option
def bundle(
    *,
    roots: tuple[Path, ...],
    fmt: str,
    namespace: str,
    out: Path | None,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Build the trust bundle: the ConfigMap isthmus-trust-bundle (key roots.pem).

    Give every root the clusters must accept: one normally, two (old and new) while a root
    is being rotated. All roots must share one trust domain.
    """
    trust = TrustBundle.of(_collect_roots(roots))
    if fmt == "pem":
        if context is not None:
            raise click.UsageError("--context applies a ConfigMap; drop --format pem")
        if out is None:
            click.echo(trust.to_pem().decode("ascii"), nl=False)
        else:
            files.write_public(out, trust.to_pem())
        return
    _emit(
        [bundle_configmap(trust, namespace=namespace)],
        out=out,
        context=context,
        kubeconfig=kubeconfig,
        secret=False,
    )


@group.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--bundle",
    "bundle_path",
    type=click.Path(exists=True, path_type=Path),
    help="Check chains against this bundle (PEM, ConfigMap YAML, or a root directory).",
)
@_at_option
def inspect(paths: tuple[Path, ...], bundle_path: Path | None, at: str | None) -> None:
    """Show certificates, chains and bundles in human terms.

    PATHS are PEM files, Secret/ConfigMap manifests (YAML) or directories of them. For
    each certificate: kind, subject, SPIFFE ID, issuer, validity and time left; for each
    chain that starts with a leaf: OK, or the reason it is refused.
    """
    now = _when(at)
    trust: TrustBundle | None = None
    if bundle_path is not None:
        source = bundle_path / files.ROOT_CERT if bundle_path.is_dir() else bundle_path
        trust = TrustBundle.of(c for _, certs in files.load_cert_sources(source) for c in certs)
    blocks: list[str] = []
    for path in paths:
        for label, certs in files.load_cert_sources(path):
            lines: list[str] = []
            for index, cert in enumerate(certs):
                name = label if len(certs) == 1 else f"{label} #{index + 1}"
                lines.extend(describe_cert(name, cert, now))
            lines.append(chain_verdict(certs, trust, now))
            blocks.append("\n".join(lines))
    click.echo("\n\n".join(blocks))


@group.command(short_help="Warn about expiring certificates, fail on expired ones.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--warn-days",
    type=click.IntRange(min=0),
    default=WARN_WITHIN.days,
    show_default=True,
    help="Warn about certificates that expire within this many days "
    "(or a third of their lifetime, if shorter).",
)
@_at_option
def check(paths: tuple[Path, ...], warn_days: int, at: str | None) -> None:
    """Check certificates for expiry.

    PATHS are PEM files, Secret/ConfigMap manifests or directories of them. A short-lived
    leaf is only warned about once less than a third of its lifetime is left.

    \b
    Exit status:
      0  all valid for longer than the warning window
      3  something expires within the window (or is not valid yet): a warning
      1  something has expired: an error naming it
    """
    now = _when(at)
    entries: list[tuple[str, x509.Certificate]] = []
    for path in paths:
        for label, certs in files.load_cert_sources(path):
            for index, cert in enumerate(certs):
                entries.append((label if len(certs) == 1 else f"{label} #{index + 1}", cert))
    findings = check_expiry(entries, now, dt.timedelta(days=warn_days))
    for finding in findings:
        click.echo(finding.line())
    code = exit_code(findings)
    if code == EXIT_ERROR:
        expired = [f for f in findings if f.level is Level.ERROR]
        names = "; ".join(
            f"{f.label} ({f.subject}) expired {f.not_after.isoformat()}" for f in expired
        )
        raise ExpiryError(f"{len(expired)} certificate(s) expired: {names}")
    if code:
        click.get_current_context().exit(code)


@group.command(short_help="Issue one leaf SVID from a cluster CA (for tests, bootstrap).")
@click.option(
    "--ca",
    "ca_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The cluster CA Secret manifest (from `cluster-ca --out`).",
)
@click.option("--namespace", "ns", required=True, help="Namespace of the workload identity.")
@click.option("--service-account", required=True, help="Service account of the identity.")
@click.option(
    "--hours",
    type=click.IntRange(min=1),
    default=int(LEAF_LIFETIME.total_seconds() // 3600),
    show_default=True,
    help="Leaf lifetime.",
)
@click.option("--dns", "dns_names", multiple=True, help="Extra DNS SAN (repeatable).")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write tls.crt (leaf and intermediate) and tls.key (0600) here.",
)
@click.option("--secret", "secret_name", help="Print a kubernetes.io/tls Secret of this name.")
def issue(
    *,
    ca_path: Path,
    ns: str,
    service_account: str,
    hours: int,
    dns_names: tuple[str, ...],
    out_dir: Path | None,
    secret_name: str | None,
) -> None:
    """Issue one leaf SVID from a cluster CA (the mirror does this in-cluster).

    For bootstrapping, tests and debugging; the identity is
    spiffe://<domain>/cluster/<the CA's cluster>/ns/NAMESPACE/sa/SERVICE_ACCOUNT.
    """
    if (out_dir is None) == (secret_name is None):
        raise click.UsageError("give exactly one of --out-dir or --secret")
    import yaml

    try:
        loaded = yaml.safe_load_all(files.read_bytes(ca_path))
        documents = [d for d in loaded if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise MaterialError(f"{ca_path}: not a YAML manifest") from exc
    if not documents:
        raise MaterialError(f"{ca_path}: no Secret in it")
    issuer = Issuer(cluster_ca_from_secret(documents[0]))
    lifetime = dt.timedelta(hours=hours)
    leaf = issuer.issue(ns, service_account, lifetime=lifetime, dns_names=dns_names)
    if out_dir is not None:
        files.write_public(out_dir / "tls.crt", leaf.chain_pem())
        files.write_private(out_dir / "tls.key", leaf.key_pem())
        click.echo(f"{issuer.identity(ns, service_account).uri} -> {out_dir}", err=True)
    else:
        assert secret_name is not None
        sys.stdout.write(to_yaml([leaf_secret(leaf, secret_name, ns)]))


__all__ = ["group"]
