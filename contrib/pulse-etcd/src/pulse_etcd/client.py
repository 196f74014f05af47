"""A small etcd v3 client on trio, through etcd's HTTP/JSON gateway (``/v3/...``).

Only what the lease gate needs: leases (grant, keep alive, revoke), a create-if-absent
transaction, a read, a guarded delete and authentication. etcd's gateway speaks JSON
over HTTP/1.1; keys and values are base64, 64-bit numbers are strings, and proto3
leaves out fields with their zero value (a failed transaction has no ``succeeded``, a
lease that is gone has no ``TTL`` in its keepalive answer). docs/plugins/etcd.md says
why this client and not a gRPC one.

HTTP is httpx (it runs on trio through anyio). Every request is bounded twice: by the
client's ``request_timeout`` per attempt, and by the caller's ``deadline`` (trio time)
for the whole call, across endpoints. An endpoint that does not answer, answers 5xx, or
says it has no leader is left for the next one; the one that answered last is tried
first next time.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import trio

log = logging.getLogger("pulse.etcd")


class EtcdError(Exception):
    """etcd answered, and refused the request (a bad request, a denied permission)."""


class EtcdUnavailable(EtcdError):
    """No endpoint answered in time (or every one said it cannot serve now)."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: str
    lease: int
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Created:
    """A create-if-absent transaction: ``ok``, or the key as someone else holds it."""

    ok: bool
    holder: KeyValue | None
    revision: int = 0


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def unb64(text: str) -> str:
    return base64.b64decode(text).decode(errors="replace")


def _kv(raw: Mapping[str, Any]) -> KeyValue:
    return KeyValue(
        key=unb64(str(raw.get("key", ""))),
        value=unb64(str(raw.get("value", ""))),
        lease=int(raw.get("lease", 0)),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
    )


# gRPC status codes that mean "this member cannot serve now; another may".
_RETRY_CODES = {4, 8, 10, 14}  # DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, UNAVAILABLE
_UNAUTHENTICATED = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Security:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = None


def ssl_context(security: Security) -> ssl.SSLContext | bool:
    """What httpx's ``verify`` gets: the system CAs (True), or a context with our CA and
    client certificate."""
    if security.ca_file is None and security.cert_file is None:
        return True
    context = ssl.create_default_context(cafile=security.ca_file)
    if security.cert_file is not None:
        context.load_cert_chain(security.cert_file, security.key_file)
    return context


class EtcdClient:
    """etcd v3 over its JSON gateway, with failover between *endpoints*.

    *transport* replaces the network (:mod:`pulse.testing.etcd` plugs its fake in here).
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        request_timeout: float = 1.0,
        security: Security | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("etcd client: no endpoints")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.request_timeout = request_timeout
        self.security = security or Security()
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._first = 0  # index of the endpoint that answered last
        self._token: str | None = None
        self.last_endpoint: str | None = None
        self.last_error: str | None = None
        self.cluster_id: str | None = None  # of the first answer: every answer must match

    def reconfigure(self, endpoints: Sequence[str], *, request_timeout: float) -> None:
        """New endpoints and timeout (a reload). An endpoint of another etcd cluster is
        never used: its answers carry another ``cluster_id`` (see :meth:`call`)."""
        if not endpoints:
            raise ValueError("etcd client: no endpoints")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.request_timeout = request_timeout
        self._first = 0

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport,
                verify=ssl_context(self.security) if self._transport is None else True,
                timeout=httpx.Timeout(self.request_timeout),
                # One connection per member is plenty; keep it (a keepalive every
                # second should not pay a TCP and TLS handshake each time).
                limits=httpx.Limits(max_connections=len(self.endpoints) * 2),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            http, self._http = self._http, None
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await http.aclose()

    # ------------------------------------------------------------------ transport

    async def call(
        self, path: str, body: Mapping[str, Any], *, deadline: float = math.inf
    ) -> dict[str, Any]:
        """POST *body* to ``/v3/<path>`` on the first endpoint that answers by *deadline*."""
        errors: list[str] = []
        order = self.endpoints[self._first :] + self.endpoints[: self._first]
        for endpoint in order:
            left = deadline - trio.current_time()
            if left <= 0:
                errors.append("out of time")
                break
            try:
                answer = await self._attempt(endpoint, path, body, min(self.request_timeout, left))
            except EtcdUnavailable as exc:
                errors.append(f"{endpoint}: {exc}")
                continue
            cluster = _cluster_id(answer)
            if self.cluster_id is None:
                self.cluster_id = cluster
            elif cluster is not None and cluster != self.cluster_id:
                # A lease or key of another cluster would exclude nobody: not etcd to us.
                errors.append(
                    f"{endpoint}: a member of another etcd cluster "
                    f"({cluster}, not {self.cluster_id})"
                )
                continue
            if endpoint in self.endpoints:  # (a reload may have replaced them meanwhile)
                self._first = self.endpoints.index(endpoint)
            self.last_endpoint = endpoint
            self.last_error = None
            return answer
        self.last_error = "; ".join(errors) or "no endpoint tried"
        raise EtcdUnavailable(self.last_error)

    async def _attempt(
        self, endpoint: str, path: str, body: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        with trio.move_on_after(timeout) as scope:
            for _ in range(2):  # a second time only after renewing an expired token
                status, answer = await self._post(endpoint, path, body, timeout)
                code = int(answer.get("code", 0) or 0) if isinstance(answer, dict) else 0
                if (status == 401 or code == _UNAUTHENTICATED) and self.security.username:
                    self._token = None
                    continue
                if status >= 500 or code in _RETRY_CODES:
                    raise EtcdUnavailable(_message(status, answer))
                if status != 200:
                    raise EtcdError(f"{path}: {_message(status, answer)}")
                return answer
            raise EtcdError(f"{path}: authentication refused")
        assert scope.cancelled_caught
        raise EtcdUnavailable(f"no answer within {timeout:g}s")

    async def _post(
        self, endpoint: str, path: str, body: Mapping[str, Any], timeout: float
    ) -> tuple[int, dict[str, Any]]:
        headers = {}
        if self.security.username and path != "auth/authenticate":
            if self._token is None:
                self._token = await self._authenticate(endpoint, timeout)
            headers["Authorization"] = self._token
        try:
            response = await self._client().post(
                f"{endpoint}/v3/{path}",
                content=json.dumps(body),
                headers=headers,
                timeout=httpx.Timeout(timeout),
            )
        except httpx.HTTPError as exc:
            raise EtcdUnavailable(
                f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)
            ) from exc
        # A streaming RPC (lease/keepalive) answers one JSON object per line.
        text = response.text.strip().splitlines()[0] if response.text.strip() else "{}"
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {"error": text[:200]}
        if not isinstance(answer, dict):
            answer = {"error": str(answer)[:200]}
        if "result" in answer and isinstance(answer["result"], dict):
            answer = answer["result"]
        return response.status_code, answer

    async def _authenticate(self, endpoint: str, timeout: float) -> str:
        body = {"name": self.security.username, "password": self.security.password or ""}
        status, answer = await self._post(endpoint, "auth/authenticate", body, timeout)
        if status >= 500 or int(answer.get("code", 0) or 0) in _RETRY_CODES:
            raise EtcdUnavailable(_message(status, answer))
        token = answer.get("token")
        if status != 200 or not token:
            raise EtcdError(
                f"authentication as {self.security.username}: {_message(status, answer)}"
            )
        return str(token)

    # ------------------------------------------------------------------ API

    async def grant(self, ttl: int, *, deadline: float = math.inf) -> tuple[int, int]:
        """A new lease: (its ID, the TTL etcd granted)."""
        answer = await self.call("lease/grant", {"TTL": ttl}, deadline=deadline)
        if answer.get("error"):
            raise EtcdError(f"lease/grant: {answer['error']}")
        return int(answer["ID"]), int(answer.get("TTL", 0))

    async def keepalive(self, lease: int, *, deadline: float = math.inf) -> int:
        """Renew *lease*: the TTL it has now, 0 when it is gone (expired or revoked)."""
        answer = await self.call("lease/keepalive", {"ID": str(lease)}, deadline=deadline)
        return int(answer.get("TTL", 0))

    async def revoke(self, lease: int, *, deadline: float = math.inf) -> None:
        """Revoke *lease* (its keys go with it); a lease already gone is fine."""
        try:
            await self.call("lease/revoke", {"ID": str(lease)}, deadline=deadline)
        except EtcdUnavailable:
            raise
        except EtcdError as exc:
            if "lease not found" not in str(exc):
                raise

    async def time_to_live(self, lease: int, *, deadline: float = math.inf) -> int:
        """Seconds *lease* has left (-1 or 0: gone)."""
        answer = await self.call("lease/timetolive", {"ID": str(lease)}, deadline=deadline)
        return int(answer.get("TTL", 0))

    async def create(
        self, key: str, value: str, lease: int, *, deadline: float = math.inf
    ) -> Created:
        """Put *key* = *value* under *lease* only if *key* does not exist (one txn)."""
        k = b64(key)
        body = {
            "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": {"key": k, "value": b64(value), "lease": str(lease)}}],
            "failure": [{"request_range": {"key": k}}],
        }
        answer = await self.call("kv/txn", body, deadline=deadline)
        if answer.get("succeeded"):
            # The transaction's revision is the new key's mod_revision.
            return Created(True, None, int(answer.get("header", {}).get("revision", 0)))
        holder = None
        for response in answer.get("responses", []):
            kvs = response.get("response_range", {}).get("kvs", [])
            if kvs:
                holder = _kv(kvs[0])
        return Created(False, holder)

    async def get(self, key: str, *, deadline: float = math.inf) -> KeyValue | None:
        answer = await self.call("kv/range", {"key": b64(key)}, deadline=deadline)
        kvs = answer.get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    async def delete_if(self, key: str, mod_revision: int, *, deadline: float = math.inf) -> bool:
        """Delete *key* only if it was last written at *mod_revision* (still ours)."""
        k = b64(key)
        body = {
            "compare": [
                {"key": k, "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}
            ],
            "success": [{"request_delete_range": {"key": k}}],
        }
        answer = await self.call("kv/txn", body, deadline=deadline)
        return bool(answer.get("succeeded"))

    async def delete(self, key: str, *, deadline: float = math.inf) -> int:
        """Delete *key* unconditionally: how many keys went."""
        answer = await self.call("kv/deleterange", {"key": b64(key)}, deadline=deadline)
        return int(answer.get("deleted", 0))


def _cluster_id(answer: Mapping[str, Any]) -> str | None:
    header = answer.get("header")
    value = header.get("cluster_id") if isinstance(header, dict) else None
    return str(value) if value else None


def _message(status: int, answer: Mapping[str, Any]) -> str:
    text = answer.get("message") or answer.get("error") or ""
    return f"HTTP {status}" + (f": {text}" if text else "")


class HandlerTransport(httpx.AsyncBaseTransport):
    """An httpx transport that hands each request to ``handle(endpoint, path, body,
    token)`` (e.g. :meth:`pulse.testing.etcd.FakeEtcd.handle`); a ``ConnectionError`` it
    raises is a refused connection."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = f"{request.url.scheme}://{request.url.netloc.decode()}"
        body = await request.aread()
        try:
            status, content = await self._handle(
                endpoint, request.url.path, body, request.headers.get("Authorization")
            )
        except ConnectionError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        return httpx.Response(status, content=content, request=request)
