"""The file edge: private keys written 0600, certificates 0644, roots never clobbered.

Writes are atomic (a temporary file in the same directory, then ``os.replace``), so a
reader sees the old file or the new one. A key file is created with mode 0600 from the
start; it is never world- or group-readable, not even for an instant.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import yaml
from cryptography import x509

from isthmus.logging import get_logger
from isthmus.trust.ca import CertifiedKey
from isthmus.trust.errors import MaterialError, RootExistsError
from isthmus.trust.manifests import certs_in_object
from isthmus.trust.pem import load_certs, load_key

# Lazy: structlog builds it on first use, after the process configured logging.
log = get_logger(__name__)


ROOT_CERT = "root.crt"
ROOT_KEY = "root.key"
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private(path: Path, data: bytes) -> None:
    """Write secret bytes (a key, a manifest with a key) readable by the owner only."""
    try:
        _write(path, data, PRIVATE_MODE)
    except OSError as exc:
        raise MaterialError(f"cannot write {path}: {exc.strerror}") from exc
    log.info("private file written", path=str(path), mode=oct(PRIVATE_MODE))


def write_public(path: Path, data: bytes) -> None:
    try:
        _write(path, data, PUBLIC_MODE)
    except OSError as exc:
        raise MaterialError(f"cannot write {path}: {exc.strerror}") from exc
    log.info("file written", path=str(path))


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MaterialError(f"cannot read {path}: {exc.strerror}") from exc


def check_private_mode(path: Path) -> None:
    """Refuse a key file that group or others can read (as ssh does)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise MaterialError(f"cannot read {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MaterialError(
            f"{path} is accessible by others (mode {oct(mode & 0o777)}); run chmod 600 {path}"
        )


def refuse_existing_root(directory: Path, *, force: bool = False) -> None:
    """Raise ``RootExistsError`` if ``directory`` holds a root (unless ``force``)."""
    existing = [p for p in (directory / ROOT_CERT, directory / ROOT_KEY) if p.exists()]
    if existing and not force:
        raise RootExistsError(f"a root already exists at {existing[0]}; pass --force to replace it")


def save_root(directory: Path, root: CertifiedKey, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``root.crt`` and ``root.key`` into ``directory``; refuse to overwrite."""
    cert_path, key_path = directory / ROOT_CERT, directory / ROOT_KEY
    refuse_existing_root(directory, force=force)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(key_path, root.key_pem())
    write_public(cert_path, root.cert_pem())
    return cert_path, key_path


def load_root(directory: Path) -> CertifiedKey:
    """The root in ``directory`` (``root.crt``, ``root.key``; key mode 0600 required)."""
    cert_path, key_path = directory / ROOT_CERT, directory / ROOT_KEY
    certs = load_certs(read_bytes(cert_path), what=str(cert_path))
    check_private_mode(key_path)
    key = load_key(read_bytes(key_path), what=str(key_path))
    return CertifiedKey(certs[0], key)


CERT_SUFFIXES = (".crt", ".pem", ".cer", ".yaml", ".yml", ".json")


def _from_yaml(label: str, data: bytes) -> list[tuple[str, list[x509.Certificate]]]:
    try:
        documents = [d for d in yaml.safe_load_all(data) if isinstance(d, dict)]
    except yaml.YAMLError as exc:
        raise MaterialError(f"{label}: neither PEM nor YAML") from exc
    found: list[tuple[str, list[x509.Certificate]]] = []
    for document in documents:
        for where, pem in certs_in_object(document):
            found.append((f"{label}: {where}", load_certs(pem, what=where)))
    if not found:
        raise MaterialError(f"{label}: no certificate found")
    return found


def load_cert_sources(path: Path) -> list[tuple[str, list[x509.Certificate]]]:
    """Every certificate group under ``path``: a PEM file (one group, in order), a YAML
    Secret/ConfigMap manifest (one group per key), or a directory of those."""
    if path.is_dir():
        groups: list[tuple[str, list[x509.Certificate]]] = []
        for child in sorted(path.rglob("*")):
            if child.is_file() and child.suffix in CERT_SUFFIXES:
                data = read_bytes(child)
                if b"-----BEGIN CERTIFICATE-----" in data or child.suffix in (".yaml", ".yml"):
                    groups.extend(load_cert_sources(child))
        if not groups:
            raise MaterialError(f"{path}: no certificate files found")
        return groups
    data = read_bytes(path)
    if b"-----BEGIN CERTIFICATE-----" in data and b"kind:" not in data:
        return [(str(path), load_certs(data, what=str(path)))]
    return _from_yaml(str(path), data)
