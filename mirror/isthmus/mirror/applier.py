"""The one place that writes: executes ``plan`` actions against the API server.

Every write is a server-side apply under the field manager ``isthmus-mirror`` (forced: the
mirror is the only writer of the fields it sets), after the ownership check; every delete
carries a UID precondition so it can never remove an object re-created by someone else.
Each request is retried a bounded number of times on 409/429/5xx/transport errors; a fault
that outlasts them becomes ``RetryableError`` (the key is requeued, with a limit), a refusal
becomes ``WriteRejected``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from isthmus.kube import errors as kube_errors
from isthmus.kube.apply import with_retries
from isthmus.kube.backoff import Backoff
from isthmus.kube.client import KubeApi
from isthmus.kube.resources import (
    ENDPOINTSLICES,
    GLOBALSERVICES,
    SERVICEIMPORTS,
    SERVICES,
    Resource,
)
from isthmus.kube.shapes import decoders
from isthmus.logging import get_logger
from isthmus.mirror.errors import RetryableError, WriteRejected
from isthmus.mirror.metrics import MirrorMetrics
from isthmus.mirror.model import JsonObj, ObjRef
from isthmus.mirror.names import FIELD_MANAGER
from isthmus.mirror.plan import Action, Apply, ApplyStatus, Conflict, Delete, ownership_problem

log = get_logger("isthmus.mirror.applier")

RESOURCES: dict[str, Resource] = {
    "Service": SERVICES,
    "EndpointSlice": ENDPOINTSLICES,
    "GlobalService": GLOBALSERVICES,
    "ServiceImport": SERVICEIMPORTS,
}
T = TypeVar("T")


@dataclass
class Outcome:
    written: dict[ObjRef, JsonObj] = field(default_factory=dict)
    deleted: list[ObjRef] = field(default_factory=list)
    conflicts: dict[ObjRef, str] = field(default_factory=dict)


class Applier:
    def __init__(
        self,
        api: KubeApi,
        metrics: MirrorMetrics,
        *,
        attempts: int = 5,
        backoff: Backoff | None = None,
        on_written: Callable[[JsonObj], None] | None = None,
        on_deleted: Callable[[ObjRef], None] | None = None,
        verify_absent: bool = True,
        on_writing: Callable[[ObjRef, bool], None] | None = None,
        project: Callable[[JsonObj], JsonObj] | None = None,
        shapes: Mapping[str, type] | None = None,
    ) -> None:
        """``verify_absent=False`` trusts the caller's complete watch cache that a name is
        free (no GET before creating); the controller watches every Service, EndpointSlice
        and GlobalService, so it passes False. ``project`` turns each written object (the
        API server's answer) into the copy that is kept, like the watch caches do; ``shapes``
        (kind -> TypedDict) limits decoding of those answers to the fields kept."""
        self._project = project or (lambda obj: obj)
        self._decode = {kind: decoders(shape).object for kind, shape in (shapes or {}).items()}
        self.verify_absent = verify_absent
        self._on_writing = on_writing or (lambda _ref, _busy: None)
        self.api = api
        self.metrics = metrics
        self.attempts = attempts
        self.backoff = backoff or Backoff(initial=0.1, maximum=2.0)
        self._on_written = on_written or (lambda _obj: None)
        self._on_deleted = on_deleted or (lambda _ref: None)

    async def _call(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        try:
            return await with_retries(op, attempts=self.attempts, backoff=self.backoff, what=what)
        except kube_errors.KubeError as exc:
            self.metrics.errors.labels(kind=type(exc).__name__).inc()
            if kube_errors.is_retryable(exc):
                raise RetryableError(f"{what}: {exc}") from exc
            raise WriteRejected(f"{what}: {exc}") from exc

    async def execute(self, actions: Sequence[Action]) -> Outcome:
        """Run ``actions`` in their order, except that consecutive actions of one stage
        (object writes; status; deletes) run together."""
        outcome = Outcome()
        stages: list[list[Action]] = []
        for action in actions:
            if stages and _stage(stages[-1][0]) == _stage(action):
                stages[-1].append(action)
            else:
                stages.append([action])
        for stage in stages:
            results = await asyncio.gather(
                *(self._one(a, outcome) for a in stage), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        return outcome

    async def _one(self, action: Action, outcome: Outcome) -> None:
        if isinstance(action, Conflict):
            outcome.conflicts[action.ref] = action.message
        elif isinstance(action, Apply):
            await self._apply(action, outcome)
        elif isinstance(action, ApplyStatus):
            await self._apply_status(action.obj, outcome)
        elif isinstance(action, Delete):
            await self._delete(action.ref, action.uid, outcome)

    async def _apply(self, action: Apply, outcome: Outcome) -> None:
        obj = action.obj
        kind = str(obj["kind"])
        res = RESOURCES[kind]
        meta = obj["metadata"]
        ref: ObjRef = (kind, meta["namespace"], meta["name"])
        what = f"apply {kind} {meta['namespace']}/{meta['name']}"
        if action.check_first and self.verify_absent:
            try:
                have = await self._call(
                    f"get {kind}", lambda: self.api.get(res, meta["name"], meta["namespace"])
                )
            except WriteRejected as exc:
                if not isinstance(exc.__cause__, kube_errors.NotFoundError):
                    raise
            else:
                problem = ownership_problem(obj, have)
                if problem is not None:
                    outcome.conflicts[ref] = problem
                    log.warning("not overwriting an object isthmus does not own", ref=ref,
                                problem=problem)
                    return
        if action.uid:
            # a precondition: if the object was replaced (by anyone) since it was seen as
            # ours, the API server refuses the write instead of applying it to the new one
            obj = {**obj, "metadata": {**meta, "uid": action.uid}}
        body = obj
        self._on_writing(ref, True)
        try:
            written = await self._call(
                what, lambda: self.api.apply(res, body, field_manager=FIELD_MANAGER, force=True,
                                             decode=self._decode.get(kind))
            )
        finally:
            self._on_writing(ref, False)
        self.metrics.objects_written.labels(kind=kind, action="apply").inc()
        written = self._project(written)
        outcome.written[ref] = written
        self._on_written(written)

    async def _apply_status(self, obj: JsonObj, outcome: Outcome) -> None:
        kind = str(obj["kind"])
        meta = obj["metadata"]
        ref: ObjRef = (kind, meta["namespace"], meta["name"])
        self._on_writing(ref, True)
        try:
            written = await self._call(
                f"apply {kind} {meta['namespace']}/{meta['name']} status",
                lambda: self.api.apply(RESOURCES[kind], obj, field_manager=FIELD_MANAGER,
                                       force=True, subresource="status",
                                       decode=self._decode.get(kind)),
            )
        finally:
            self._on_writing(ref, False)
        self.metrics.objects_written.labels(kind=kind, action="status").inc()
        written = self._project(written)
        outcome.written[ref] = written
        self._on_written(written)

    async def _delete(self, ref: ObjRef, uid: str, outcome: Outcome) -> None:
        kind, namespace, name = ref
        try:
            await self._call(
                f"delete {kind} {namespace}/{name}",
                lambda: self.api.delete(RESOURCES[kind], name, namespace, uid=uid or None),
            )
        except (WriteRejected, RetryableError) as exc:
            # Gone already, or re-created by someone else (UID precondition): not ours.
            if not isinstance(exc.__cause__, kube_errors.NotFoundError | kube_errors.ConflictError):
                raise
        self.metrics.objects_written.labels(kind=kind, action="delete").inc()
        outcome.deleted.append(ref)
        self._on_deleted(ref)


def _stage(action: Action) -> int:
    # The GlobalService goes first, alone: DNS serves a name only once its GlobalService
    # exists, so a GlobalService the API server refuses leaves no Service behind that
    # could give the name an address (plan.py). Services and slices do not depend on each
    # other (a slice names its Service by label), so they go together; status follows them
    # (it carries the Services' ClusterIPs).
    if isinstance(action, Delete):
        return 3
    if isinstance(action, ApplyStatus):
        return 2
    if isinstance(action, Apply) and action.obj.get("kind") == "GlobalService":
        return 0
    return 1


def vips_of(objects: Mapping[ObjRef, JsonObj]) -> dict[str, str]:
    """Service name -> ClusterIP, for the Services among ``objects``."""
    out: dict[str, str] = {}
    for (kind, _ns, name), obj in objects.items():
        if kind == "Service":
            ip = (obj.get("spec") or {}).get("clusterIP")
            if ip and ip != "None":
                out[name] = str(ip)
    return out
