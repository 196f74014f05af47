"""The etcd JSON client against pulse.testing.etcd's fake: the calls, endpoint failover
(down, frozen, electing members), the deadline, authentication."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from pulse_etcd.client import EtcdClient, EtcdError, EtcdUnavailable, HandlerTransport, Security

from pulse.testing.etcd import FakeEtcd


def client(fake: FakeEtcd, **more: object) -> EtcdClient:
    return EtcdClient(
        fake.endpoints,
        request_timeout=0.5,
        transport=HandlerTransport(fake.client("prime")),
        **more,  # type: ignore[arg-type]
    )


async def test_etcd_client_create_if_absent_is_won_once_and_names_the_holder(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeEtcd()
    etcd = client(fake)
    lease, ttl = await etcd.grant(1)
    assert ttl == 2  # etcd grants a TTL of 1 as 2
    first = await etcd.create("/pulse/c/groups/web", "prime 1", lease)
    second = await etcd.create("/pulse/c/groups/web", "calc 1", lease)
    assert first.ok and first.revision > 0
    assert not second.ok and second.holder is not None
    assert second.holder.value == "prime 1" and second.holder.lease == lease
    assert await etcd.keepalive(lease) == 2
    assert not await etcd.delete_if("/pulse/c/groups/web", first.revision + 1)
    assert await etcd.delete_if("/pulse/c/groups/web", first.revision)
    assert await etcd.get("/pulse/c/groups/web") is None
    await etcd.revoke(lease)
    await etcd.revoke(lease)  # already gone: fine
    assert await etcd.keepalive(lease) == 0
    with pytest.raises(EtcdError, match="cannot unmarshal"):
        await etcd.call("lease/grant", {"TTL": 1.5})
    await etcd.aclose()


async def test_etcd_client_moves_past_down_frozen_and_electing_members_within_its_timeouts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeEtcd()
    etcd = client(fake)
    fake.down.add(fake.endpoints[0])
    fake.frozen.add(fake.endpoints[1])
    start = trio.current_time()
    lease, _ = await etcd.grant(5)
    assert etcd.last_endpoint == fake.endpoints[2]
    assert trio.current_time() - start < 0.6  # one request timeout for the frozen one
    # The one that answered is tried first next time.
    start = trio.current_time()
    await etcd.keepalive(lease)
    assert trio.current_time() - start < 0.01
    fake.elect(3)
    with pytest.raises(EtcdUnavailable, match="no leader"):
        await etcd.keepalive(lease)
    # A deadline bounds the whole call, across endpoints.
    fake.frozen = set(fake.endpoints)
    start = trio.current_time()
    with pytest.raises(EtcdUnavailable):
        await etcd.keepalive(lease, deadline=start + 0.2)
    assert trio.current_time() - start == pytest.approx(0.2)
    await etcd.aclose()


async def test_etcd_client_authenticates_and_renews_an_expired_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeEtcd(users={"pulse": "s3cret"})
    etcd = client(fake, security=Security(username="pulse", password="s3cret"))
    lease, _ = await etcd.grant(5)
    fake._tokens.clear()  # etcd restarted: the simple token is gone
    assert await etcd.keepalive(lease) == 5
    paths = [p for _, p in fake.requests]
    assert paths.count("/v3/auth/authenticate") == 2
    wrong = client(fake, security=Security(username="pulse", password="nope"))
    with pytest.raises(EtcdError, match="authentication failed"):
        await wrong.grant(5)
    await etcd.aclose()
    await wrong.aclose()


async def test_etcd_client_takes_new_endpoints_but_never_a_member_of_another_cluster(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ours = FakeEtcd()
    other = FakeEtcd(endpoints=("http://other1:2379",), cluster_id="2")
    to_ours, to_other = ours.client("prime"), other.client("prime")

    async def route(endpoint: str, path: str, body: bytes, token: str | None) -> object:
        handle = to_other if endpoint in other.endpoints else to_ours
        return await handle(endpoint, path, body, token)

    etcd = EtcdClient(ours.endpoints[:1], transport=HandlerTransport(route))
    lease, _ = await etcd.grant(5)
    # A reload: the other cluster's member first, then the rest of ours.
    etcd.reconfigure((*other.endpoints, *ours.endpoints[1:]), request_timeout=0.5)
    assert await etcd.keepalive(lease) == 5
    assert etcd.last_endpoint == ours.endpoints[1]
    assert etcd.request_timeout == 0.5
    etcd.reconfigure(other.endpoints, request_timeout=0.5)
    with pytest.raises(EtcdUnavailable, match=r"a member of another etcd cluster \(2, not 1\)"):
        await etcd.keepalive(lease)
    await etcd.aclose()


async def test_etcd_client_a_call_under_way_when_the_endpoints_change_still_ends_well(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeEtcd(latency=0.2)
    etcd = client(fake)
    etcd.reconfigure(fake.endpoints[:1], request_timeout=0.5)
    answers: list[int] = []

    async def grant() -> None:
        answers.append((await etcd.grant(5))[0])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(grant)
        await trio.sleep(0.1)  # the request is at etcd1
        etcd.reconfigure(fake.endpoints[1:], request_timeout=0.5)
    assert answers and etcd.last_endpoint == fake.endpoints[0]
    assert await etcd.keepalive(answers[0]) == 5  # now through etcd2
    assert etcd.last_endpoint == fake.endpoints[1]
    await etcd.aclose()
