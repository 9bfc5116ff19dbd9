"""``KubeApi``: the one asyncio client isthmus uses to talk to a Kubernetes API server.

It is a thin, typed layer over ``kubernetes_asyncio``: that library loads kubeconfigs
(contexts, exec plugins, in-cluster tokens) and owns the HTTP session; we issue JSON
requests against resource paths and turn every failure into the ``isthmus.kube.errors`` tree
in one place. Objects are plain ``dict``s here; callers validate them into pydantic models at
their own boundary.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml
import yarl
from aiohttp import helpers as aiohttp_helpers

from isthmus.kube import errors, lean_import
from isthmus.kube.resources import Resource
from isthmus.kube.shapes import Decode

JsonObj = dict[str, Any]

_TIMEOUT = 30.0
_THROTTLE_RETRIES = 10
_MAX_RETRY_AFTER = 1.0
_SERVICE_HOST_ENV = "KUBERNETES_SERVICE_HOST"


class KubeApi:
    """An API-server connection. Create with ``await KubeApi.connect(...)``; ``close()`` after."""

    def __init__(self, api_client: Any, name: str = "") -> None:
        self._client = api_client
        self.name = name
        self._slots: asyncio.Semaphore | None = None
        # Off by default, as the Kubernetes control plane's own clients set it
        # (`DisableCompression`): the API server gzips every answer over 128 KiB, which on
        # a restart's LIST of 50 000 objects cost it about as much CPU as encoding them,
        # and saves nothing on the in-cluster network isthmus's controllers use.
        self.compression = False

    def limit_in_flight(self, requests: int) -> None:
        """At most ``requests`` ordinary requests at once (watches are not counted).

        Each request in flight holds its own HTTP/1.1 connection, and each TLS connection
        costs about 128 KiB of buffers in asyncio; a controller with 64 workers otherwise
        keeps one per request it ever had in flight at once (~200 seen: 25 MB). The API
        server is no faster at 64 in flight than at 16 (docs/decisions/mirror-memory.md)."""
        self._slots = asyncio.Semaphore(requests)

    @classmethod
    async def connect(
        cls, kubeconfig: str | Path | None = None, context: str | None = None
    ) -> KubeApi:
        """From a kubeconfig (path or ``$KUBECONFIG``) and context, or in-cluster config."""
        # kubernetes_asyncio without its generated API and model classes (~40 MB): loaded
        # here, at first use, not when this module is imported (see lean_import).
        k8s_client, k8s_config = lean_import.load()
        paths = str(kubeconfig or os.environ.get("KUBECONFIG", "")).split(os.pathsep)
        paths = [p for p in paths if p]
        in_cluster = kubeconfig is None and context is None and os.environ.get(_SERVICE_HOST_ENV)
        if not in_cluster:
            # Said here, in one line: the library would log "Config not found" and then fail
            # on a missing key of an empty configuration.
            # Like kubectl, files missing from a list are skipped; none at all is an error.
            wanted = paths or [str(Path.home() / ".kube" / "config")]
            paths = [p for p in wanted if os.path.isfile(p)]  # noqa: ASYNC240 -- a stat, once
            if not paths:
                raise errors.ConfigurationError(
                    f"no kubeconfig file at {', '.join(wanted)}: pass --kubeconfig, set "
                    "KUBECONFIG, or run inside a pod (in-cluster configuration)"
                )
        try:
            if in_cluster:
                configuration = k8s_client.Configuration()
                k8s_config.load_incluster_config(
                    client_configuration=configuration
                )
                api_client = k8s_client.ApiClient(configuration)
            elif len(paths) > 1:
                api_client = await k8s_config.new_client_from_config_dict(
                    merge_kubeconfigs([Path(p) for p in paths]), context=context
                )
            else:
                api_client = await k8s_config.new_client_from_config(
                    config_file=paths[0],
                    context=context,
                    persist_config=False,
                )
        except (k8s_config.ConfigException, OSError, KeyError, ValueError) as exc:
            where = f"context {context!r}" if context else "the current context"
            raise errors.ConfigurationError(
                f"cannot load Kubernetes configuration for {where}: {exc}"
            ) from exc
        _decide_proxy_once(api_client)
        return cls(api_client, name=context or "")

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> KubeApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- raw requests --------------------------------------------------------------------------
    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | aiohttp.ClientTimeout | None = _TIMEOUT,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if not self.compression:
            headers["Accept-Encoding"] = "identity"
        # kubernetes_asyncio serialises dict bodies as JSON (also for apply-patch+yaml:
        # JSON is YAML), so bodies are passed through as they are.
        params = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        try:
            response: aiohttp.ClientResponse = await self._client.call_api(
                path,
                method,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise errors.TransportError(f"{method} {path}: {exc!r}") from exc
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        decode: Decode | None = None,
    ) -> JsonObj:
        """One request; the answer parsed as a JSON object (by ``decode``, a shape's decoder
        from ``isthmus.kube.shapes``, if given)."""
        if self._slots is None:
            return await self._request(method, path, query, body, content_type, decode)
        async with self._slots:
            return await self._request(method, path, query, body, content_type, decode)

    async def _request(
        self, method: str, path: str, query: dict[str, Any] | None, body: Any,
        content_type: str, decode: Decode | None,
    ) -> JsonObj:
        for attempt in range(_THROTTLE_RETRIES + 1):
            response = await self._send(
                method, path, query=query, body=body, content_type=content_type
            )
            try:
                data = await response.read()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise errors.TransportError(f"{method} {path}: {exc!r}") from exc
            finally:
                response.release()
            # Like client-go: a 429 with Retry-After (throttling, or a new resource's cache
            # still initialising) was not processed, so any verb may be sent again.
            retry_after = response.headers.get("Retry-After")
            if response.status == 429 and retry_after and attempt < _THROTTLE_RETRIES:
                await asyncio.sleep(min(_MAX_RETRY_AFTER, _seconds(retry_after)))
                continue
            break
        if not 200 <= response.status < 300:
            raise errors.from_status(response.status, data)
        try:
            parsed = (decode or json.loads)(data) if data else {}
        except ValueError as exc:  # also pydantic's ValidationError: a field of a wrong type
            raise errors.TransportError(f"{method} {path}: malformed answer: {exc}") from exc
        if not isinstance(parsed, dict):
            raise errors.TransportError(f"{method} {path}: answer is not a JSON object")
        return parsed

    async def stream_lines(
        self, path: str, query: dict[str, Any], read_timeout: float
    ) -> AsyncIterator[bytes]:
        """GET a streaming endpoint (a watch) and yield its newline-delimited JSON lines."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read_timeout)
        response = await self._send("GET", path, query=query, timeout=timeout)
        try:
            if response.status != 200:
                raise errors.from_status(response.status, await response.read())
            while True:
                try:
                    line = await response.content.readline()
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    raise errors.TransportError(f"watch {path}: {exc!r}") from exc
                if not line:
                    return
                if line.strip():
                    yield line
        finally:
            response.release()

    # --- typed helpers ----------------------------------------------------------------------------
    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JsonObj:
        return await self.request("GET", res.path(namespace, name))

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        decode: Decode | None = None,
    ) -> JsonObj:
        """One LIST request; with ``limit``, one page (the answer's ``metadata.continue``
        names the next)."""
        return await self.request(
            "GET",
            res.path(namespace),
            query={
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
                "resourceVersion": resource_version,
                "limit": limit,
                "continue": continue_token,
            },
            decode=decode,
        )

    async def create(self, res: Resource, obj: JsonObj, namespace: str | None = None) -> JsonObj:
        return await self.request("POST", res.path(namespace), body=obj)

    async def replace(
        self, res: Resource, obj: JsonObj, namespace: str | None = None
    ) -> JsonObj:
        name = obj["metadata"]["name"]
        return await self.request("PUT", res.path(namespace, name), body=obj)

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> JsonObj:
        """Delete; with ``uid``/``resource_version`` preconditions, never a different object."""
        preconditions = {
            k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v
        }
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if preconditions:
            body["preconditions"] = preconditions  # type: ignore[assignment]
        return await self.request("DELETE", res.path(namespace, name), body=body)

    async def merge_patch(
        self,
        res: Resource,
        name: str,
        body: JsonObj,
        namespace: str | None = None,
        *,
        field_manager: str,
    ) -> JsonObj:
        """JSON merge patch of an existing object (404 if it does not exist: unlike
        server-side apply, a patch never creates, so ``patch`` permission is enough)."""
        return await self.request(
            "PATCH", res.path(namespace, name), query={"fieldManager": field_manager},
            body=body, content_type="application/merge-patch+json",
        )

    async def apply(
        self,
        res: Resource,
        obj: JsonObj,
        *,
        field_manager: str,
        force: bool = False,
        subresource: str | None = None,
        decode: Decode | None = None,
    ) -> JsonObj:
        """Server-side apply ``obj`` (a full intent for the fields this manager owns)."""
        meta = obj["metadata"]
        path = res.path(meta.get("namespace"), meta["name"])
        if subresource:
            path += f"/{subresource}"
        return await self.request(
            "PATCH",
            path,
            query={"fieldManager": field_manager, "force": "true" if force else None},
            body=obj,
            content_type="application/apply-patch+yaml",
            decode=decode,
        )


def merge_kubeconfigs(paths: list[Path]) -> dict[str, Any]:
    """kubectl's rule for a ':'-separated $KUBECONFIG: the first file to name a cluster,
    user or context wins; current-context comes from the first file that sets one."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config",
                              "clusters": [], "users": [], "contexts": []}
    seen: dict[str, set[str]] = {"clusters": set(), "users": set(), "contexts": set()}
    for path in paths:
        if not path.exists():
            continue
        data = yaml.safe_load(path.read_text()) or {}
        merged.setdefault("current-context", data.get("current-context"))
        if not merged["current-context"]:
            merged["current-context"] = data.get("current-context")
        for section in ("clusters", "users", "contexts"):
            for entry in data.get(section) or []:
                if entry.get("name") not in seen[section]:
                    seen[section].add(entry.get("name"))
                    merged[section].append(entry)
    return merged


def _decide_proxy_once(api_client: Any) -> None:
    """kubernetes_asyncio's session has ``trust_env=True``, so aiohttp looks up the proxy
    variables and ``~/.netrc`` in a worker thread for *every* request (a large share of a
    busy controller's CPU). When no environment proxy applies to the API server, which is
    the usual case, turn that per-request lookup off; otherwise leave it as it is."""
    session = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
    if session is None or not getattr(session, "_trust_env", False):
        return
    try:
        aiohttp_helpers.get_env_proxy_for_url(yarl.URL(api_client.configuration.host))
    except LookupError:
        session._trust_env = False  # no env proxy for this server: nothing to look up
    except (ValueError, TypeError):
        return


def _seconds(retry_after: str) -> float:
    try:
        return max(0.05, float(retry_after))
    except ValueError:
        return _MAX_RETRY_AFTER


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
