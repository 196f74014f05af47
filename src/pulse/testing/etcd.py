"""A fake etcd: the slice of etcd's v3 JSON gateway that pulse-etcd uses, in memory.

It answers ``/v3/lease/{grant,keepalive,revoke,timetolive}``, ``/v3/kv/{txn,range,
deleterange}`` and ``/v3/auth/authenticate`` with the JSON etcd 3.4's gateway sends
(base64 keys and values, 64-bit numbers as strings, zero values left out, a keepalive
answer wrapped in ``{"result": ...}``), on trio's clock, so a test under
``trio.testing.MockClock`` can run a lease for minutes of virtual time in milliseconds.

Leases behave as in etcd (see contrib/pulse-etcd/README.md for the measured facts):
TTLs are whole seconds, a TTL of 1 is granted as 2, and an expired lease's keys go in
a 500 ms loop (so up to 0.5 s after the TTL). Each endpoint can be made ``down``
(connection refused), ``frozen`` (accepts and never answers) or ``electing`` (answers
503 "no leader") to test failover and self-demotion.

It has no network and no HTTP of its own: :meth:`FakeEtcd.handle` takes an endpoint,
a path and a JSON body; pulse-etcd's tests plug it into their HTTP client.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

__all__ = ["EXPIRY_LOOP", "FakeEtcd", "FakeEtcdDown"]

EXPIRY_LOOP = 0.5  # etcd revokes expired leases in a loop of this period


class FakeEtcdDown(ConnectionError):
    """The endpoint refuses connections (the process is down or cut off)."""


@dataclass(slots=True)
class _Lease:
    id: int
    ttl: int
    expires: float  # trio time


@dataclass(slots=True)
class _Key:
    value: bytes
    lease: int
    create_revision: int
    mod_revision: int
    version: int


@dataclass(slots=True)
class FakeEtcd:
    """One etcd cluster behind *endpoints* (the URLs clients are given)."""

    endpoints: tuple[str, ...] = ("http://etcd1:2379", "http://etcd2:2379", "http://etcd3:2379")
    users: Mapping[str, str] = field(default_factory=dict)  # name -> password; auth on
    latency: float = 0.002
    down: set[str] = field(default_factory=set)
    frozen: set[str] = field(default_factory=set)
    cut: set[str] = field(default_factory=set)  # clients (see client()) cut off from etcd
    electing_until: float = -math.inf
    cluster_id: str = "1"  # in every answer's header (another cluster: another id)
    revision: int = 1
    keys: dict[bytes, _Key] = field(default_factory=dict)
    leases: dict[int, _Lease] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(7587862069913))
    _tokens: set[str] = field(default_factory=set)

    # ------------------------------------------------------------------ faults

    def all_down(self) -> None:
        self.down = set(self.endpoints)

    def all_up(self) -> None:
        self.down.clear()
        self.frozen.clear()

    def elect(self, seconds: float) -> None:
        """A leader election: every member answers 503 for *seconds*."""
        self.electing_until = trio.current_time() + seconds

    # ------------------------------------------------------------------ what tests read

    def value(self, key: str) -> str | None:
        self._expire()
        kv = self.keys.get(key.encode())
        return kv.value.decode() if kv is not None else None

    # ------------------------------------------------------------------ the API

    def client(self, name: str) -> Callable[..., Awaitable[tuple[int, bytes]]]:
        """:meth:`handle` as seen from the client *name*: cut off while in :attr:`cut`."""

        async def handle(
            endpoint: str, path: str, body: bytes, token: str | None = None
        ) -> tuple[int, bytes]:
            if name in self.cut:
                await trio.sleep(self.latency)
                raise FakeEtcdDown(f"{endpoint}: no route to host from {name}")
            return await self.handle(endpoint, path, body, token)

        return handle

    async def handle(
        self, endpoint: str, path: str, body: bytes, token: str | None = None
    ) -> tuple[int, bytes]:
        """One HTTP request (*token*: its ``Authorization`` header): (status, JSON body).
        Raises :class:`FakeEtcdDown` for an endpoint that is down."""
        member = endpoint.rstrip("/")
        if member in self.down:
            raise FakeEtcdDown(f"{member}: connection refused")
        if member in self.frozen:
            await trio.sleep_forever()
        await trio.sleep(self.latency)
        self.requests.append((member, path))
        if trio.current_time() < self.electing_until:
            return 503, _dump({"error": "etcdserver: no leader", "code": 14})
        self._expire()
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, _dump({"error": "bad JSON", "code": 3})
        name = path.removeprefix("/v3/").strip("/")
        handler = getattr(self, "_" + name.replace("/", "_"), None)
        if handler is None:
            return 404, _dump({"error": "Not Found", "code": 5})
        if self.users and name != "auth/authenticate" and token not in self._tokens:
            return 401, _dump({"error": "etcdserver: invalid auth token", "code": 16})
        status, answer = handler(request)
        answer.setdefault("header", self._header())
        if name == "lease/keepalive" and status == 200:
            return status, _dump({"result": answer}) + b"\n"
        return status, _dump(answer)

    def _header(self) -> dict[str, str]:
        return {"cluster_id": self.cluster_id, "member_id": "1", "revision": str(self.revision)}

    def _expire(self) -> None:
        now = trio.current_time()
        for lease in list(self.leases.values()):
            # Revoked by the next turn of the 500 ms loop after the TTL ran out.
            if now >= math.ceil(lease.expires / EXPIRY_LOOP) * EXPIRY_LOOP:
                self._revoke(lease.id)

    def _revoke(self, lease_id: int) -> None:
        self.leases.pop(lease_id, None)
        gone = [k for k, kv in self.keys.items() if kv.lease == lease_id]
        if gone:
            self.revision += 1
            for k in gone:
                del self.keys[k]

    # Handlers: (status, answer) for the request, already parsed.

    def _auth_authenticate(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not self.users:
            return 400, {"error": "etcdserver: authentication is not enabled", "code": 9}
        if self.users.get(str(req.get("name"))) != req.get("password"):
            return 400, {"error": "etcdserver: authentication failed", "code": 3}
        token = f"tok.{next(self._ids)}"
        self._tokens.add(token)
        return 200, {"token": token}

    def _lease_grant(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ttl = req.get("TTL")
        if not isinstance(ttl, int) and not (isinstance(ttl, str) and ttl.isdigit()):
            return 400, {"error": "json: cannot unmarshal number into int64", "code": 3}
        ttl = max(int(ttl), 2)  # etcd grants a TTL of 1 as 2 (its minimum)
        lease = _Lease(next(self._ids), ttl, trio.current_time() + ttl)
        self.leases[lease.id] = lease
        return 200, {"ID": str(lease.id), "TTL": str(ttl)}

    def _lease_keepalive(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        lease = self.leases.get(int(req.get("ID", 0)))
        if lease is None:
            return 200, {"ID": str(req.get("ID", 0))}  # TTL 0 left out: the lease is gone
        lease.expires = trio.current_time() + lease.ttl
        return 200, {"ID": str(lease.id), "TTL": str(lease.ttl)}

    def _lease_revoke(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        lease_id = int(req.get("ID", 0))
        if lease_id not in self.leases:
            return 404, {"error": "etcdserver: requested lease not found", "code": 5}
        self._revoke(lease_id)
        return 200, {}

    def _lease_timetolive(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        lease = self.leases.get(int(req.get("ID", 0)))
        if lease is None:
            return 200, {"ID": str(req.get("ID", 0)), "TTL": "-1"}
        left = max(0, math.ceil(lease.expires - trio.current_time()))
        return 200, {"ID": str(lease.id), "TTL": str(left), "grantedTTL": str(lease.ttl)}

    def _kv_range(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        kv = self.keys.get(_unb64(req.get("key", "")))
        if kv is None:
            return 200, {}
        return 200, {"kvs": [self._kv_json(_unb64(req["key"]), kv)], "count": "1"}

    def _kv_deleterange(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        key = _unb64(req.get("key", ""))
        if key not in self.keys:
            return 200, {}
        self.revision += 1
        del self.keys[key]
        return 200, {"deleted": "1"}

    def _kv_txn(self, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ok = all(self._compare(c) for c in req.get("compare", []))
        responses = []
        for op in req.get("success" if ok else "failure", []):
            if "request_put" in op:
                put = op["request_put"]
                lease = int(put.get("lease", 0))
                if lease and lease not in self.leases:
                    return 404, {"error": "etcdserver: requested lease not found", "code": 5}
                key = _unb64(put["key"])
                self.revision += 1
                old = self.keys.get(key)
                self.keys[key] = _Key(
                    _unb64(put.get("value", "")),
                    lease,
                    old.create_revision if old else self.revision,
                    self.revision,
                    old.version + 1 if old else 1,
                )
                responses.append({"response_put": {"header": {"revision": str(self.revision)}}})
            elif "request_range" in op:
                responses.append({"response_range": self._kv_range(op["request_range"])[1]})
            elif "request_delete_range" in op:
                deleted = self._kv_deleterange(op["request_delete_range"])[1]
                responses.append({"response_delete_range": deleted})
        answer: dict[str, Any] = {"responses": responses}
        if ok:
            answer["succeeded"] = True  # proto3: a false one is left out
        return 200, answer

    def _compare(self, compare: dict[str, Any]) -> bool:
        kv = self.keys.get(_unb64(compare.get("key", "")))
        target = compare.get("target", "VERSION")
        field_name = {"CREATE": "create_revision", "MOD": "mod_revision", "VERSION": "version"}
        if target not in field_name or compare.get("result", "EQUAL") != "EQUAL":
            raise ValueError(f"the fake etcd compares only CREATE/MOD/VERSION EQUAL: {compare}")
        want = int(compare.get(field_name[target], 0))
        have = getattr(kv, field_name[target]) if kv is not None else 0
        return bool(have == want)

    def _kv_json(self, key: bytes, kv: _Key) -> dict[str, str]:
        out = {
            "key": base64.b64encode(key).decode(),
            "create_revision": str(kv.create_revision),
            "mod_revision": str(kv.mod_revision),
            "version": str(kv.version),
            "value": base64.b64encode(kv.value).decode(),
        }
        if kv.lease:
            out["lease"] = str(kv.lease)
        return out


def _unb64(text: object) -> bytes:
    return base64.b64decode(str(text))


def _dump(answer: Mapping[str, Any]) -> bytes:
    return json.dumps(answer).encode()
