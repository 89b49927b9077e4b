"""API keys at the edge: who may call `/v1`, and what a refusal looks like."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.databases import BACKENDS
from turnstream.server.auth import KeyCache

from .gated import Gated, gated_app


@pytest.fixture(params=BACKENDS)
async def gated(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Gated]:
    async with gated_app(str(request.param), tmp_path) as served:
        yield served


def _is_invalid_api_key(body: dict[str, object]) -> bool:
    error = body["error"]
    assert isinstance(error, dict)
    return (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "invalid_api_key",
        None,
    )


async def test_with_no_keys_the_api_is_open_as_the_default_project(gated: Gated) -> None:
    reply = await gated.client.post("/v1/conversations", json={})
    assert reply.status_code == 200
    assert await gated.store.scoped("default").get_conversation(reply.json()["id"]) is not None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("POST", "/v1/responses"),
        ("GET", "/v1/responses/resp_x"),
        ("GET", "/v1/responses/resp_x?stream=true"),
        ("POST", "/v1/responses/resp_x/cancel"),
        ("DELETE", "/v1/responses/resp_x"),
        ("GET", "/v1/responses/resp_x/input_items"),
        ("POST", "/v1/conversations"),
        ("GET", "/v1/conversations/conv_x"),
        ("POST", "/v1/conversations/conv_x"),
        ("DELETE", "/v1/conversations/conv_x"),
        ("POST", "/v1/conversations/conv_x/items"),
        ("GET", "/v1/conversations/conv_x/items"),
        ("GET", "/v1/conversations/conv_x/items/msg_x"),
        ("DELETE", "/v1/conversations/conv_x/items/msg_x"),
        ("GET", "/v1/no-such-route"),
        ("GET", "/chat/api/conversations"),
        ("POST", "/chat/api/turn"),
    ],
)
async def test_once_a_key_exists_every_route_needs_one(
    gated: Gated, method: str, path: str
) -> None:
    await gated.key("ci")
    for headers in (
        {},
        {"authorization": "Bearer sk-ts-wrongwrongwrongwrong"},
        {"authorization": "Basic x"},
    ):
        reply = await gated.client.request(method, path, headers=headers, content=b"{}")
        assert reply.status_code == 401, (headers, reply.text)
        assert _is_invalid_api_key(reply.json())
        assert "sk-ts-wrong" not in reply.text


async def test_a_valid_key_is_let_through(gated: Gated) -> None:
    headers = await gated.key("ci")
    reply = await gated.client.get("/v1/models", headers=headers)
    assert reply.status_code == 200
    reply = await gated.client.get("/v1/responses/resp_missing", headers=headers)
    assert reply.status_code == 404


async def test_a_revoked_key_stops_working(gated: Gated) -> None:
    headers = await gated.key("ci")
    await gated.key("other")
    assert (await gated.client.get("/v1/models", headers=headers)).status_code == 200
    await gated.store.revoke_key("ci")
    # auth_cache_ttl is 0 here; in production a revocation waits out that TTL at most
    assert (await gated.client.get("/v1/models", headers=headers)).status_code == 401


async def test_the_docs_and_schema_stay_readable_without_a_key(gated: Gated) -> None:
    await gated.key("ci")
    assert (await gated.client.get("/openapi.json")).status_code == 200


async def test_require_auth_refuses_even_with_no_keys(tmp_path: Path) -> None:
    async with gated_app("sqlite", tmp_path, require_auth=True) as served:
        reply = await served.client.get("/v1/models")
        assert reply.status_code == 401
        assert _is_invalid_api_key(reply.json())


async def test_a_key_check_is_reused_only_for_the_cache_ttl(tmp_path: Path) -> None:
    now = [0.0]
    async with gated_app("sqlite", tmp_path) as served:
        served.state.key_cache = KeyCache(2.0, clock=lambda: now[0])
        headers = await served.key("ci")
        await served.key("other")
        assert (await served.client.get("/v1/models", headers=headers)).status_code == 200
        await served.store.revoke_key("ci")
        now[0] += 1.9  # still within the TTL on this replica
        assert (await served.client.get("/v1/models", headers=headers)).status_code == 200
        now[0] += 0.2  # past it: the revocation has reached this replica
        assert (await served.client.get("/v1/models", headers=headers)).status_code == 401


@pytest.mark.parametrize("allowed", [None, "https://app.example"])
async def test_cors_is_off_unless_one_origin_is_allowed(
    tmp_path: Path, allowed: str | None
) -> None:
    async with gated_app("sqlite", tmp_path, cors_origin=allowed) as served:
        for origin in ("https://app.example", "https://evil.example"):
            preflight = await served.client.options(
                "/v1/responses",
                headers={
                    "origin": origin,
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "authorization",
                },
            )
            granted = preflight.headers.get("access-control-allow-origin")
            assert granted == (origin if allowed == origin else None), (allowed, origin)


class _SlowKeyStore:
    """Answers `has_keys` only when `answer` is set; counts the questions."""

    def __init__(self) -> None:
        self.asked = 0
        self.answer = asyncio.Event()
        self.fail = False

    async def has_keys(self) -> bool:
        self.asked += 1
        await self.answer.wait()
        if self.fail:
            raise OSError("database gone")
        return True


async def test_a_burst_on_an_empty_key_cache_asks_the_database_once() -> None:
    now = [0.0]
    cache = KeyCache(2.0, clock=lambda: now[0])
    store = _SlowKeyStore()
    burst = [asyncio.create_task(cache.has_keys(store)) for _ in range(50)]  # type: ignore[arg-type]  # only has_keys is asked
    await asyncio.sleep(0)  # every request is now waiting for the one question
    burst[0].cancel()  # a caller that goes away does not take the answer with it
    store.answer.set()
    assert await asyncio.gather(*burst[1:]) == [True] * 49
    assert store.asked == 1
    now[0] += 2.1  # expired: the next burst asks once more
    assert await asyncio.gather(*(cache.has_keys(store) for _ in range(10))) == [True] * 10  # type: ignore[arg-type]
    assert store.asked == 2


async def test_a_failed_key_question_reaches_every_waiter_and_is_asked_again() -> None:
    cache = KeyCache(2.0, clock=lambda: 0.0)
    store = _SlowKeyStore()
    store.fail = True
    burst = [asyncio.create_task(cache.has_keys(store)) for _ in range(5)]  # type: ignore[arg-type]
    await asyncio.sleep(0)
    store.answer.set()
    outcomes = await asyncio.gather(*burst, return_exceptions=True)
    assert all(isinstance(outcome, OSError) for outcome in outcomes)
    store.fail = False
    assert await cache.has_keys(store) is True  # type: ignore[arg-type]
    assert store.asked == 2


async def test_an_ageing_answer_is_used_at_once_and_asked_again_in_the_background() -> None:
    now = [0.0]
    cache = KeyCache(2.0, clock=lambda: now[0])
    store = _SlowKeyStore()
    store.answer.set()
    assert await cache.has_keys(store) is True  # type: ignore[arg-type]  # only has_keys is asked
    store.answer.clear()  # from now on the database does not answer until told
    now[0] += 0.9  # young: no question
    assert await cache.has_keys(store) is True  # type: ignore[arg-type]
    assert store.asked == 1
    now[0] += 0.3  # past half its life: answered from the cache, asked in the background
    assert await cache.has_keys(store) is True  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert store.asked == 2
    assert await cache.has_keys(store) is True  # type: ignore[arg-type]
    assert store.asked == 2  # one refresh in flight, not one per request
    store.answer.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    now[0] += 1.5  # past the first answer's life, within the refreshed one's
    assert await cache.has_keys(store) is True  # type: ignore[arg-type]
    assert store.asked == 2


async def test_a_failed_refresh_ahead_is_dropped_and_the_old_answer_still_expires() -> None:
    now = [0.0]
    cache = KeyCache(2.0, clock=lambda: now[0])
    store = _SlowKeyStore()
    store.answer.set()
    assert await cache.has_keys(store) is True  # type: ignore[arg-type]
    store.fail = True
    now[0] += 1.5
    assert await cache.has_keys(store) is True  # type: ignore[arg-type]  # the refresh fails unseen
    for _ in range(3):
        await asyncio.sleep(0)
    assert store.asked == 2
    now[0] += 0.6  # the first answer has expired: the next request waits and sees the error
    with pytest.raises(OSError, match="database gone"):
        await cache.has_keys(store)  # type: ignore[arg-type]


async def test_a_revoked_key_is_refused_within_the_ttl_when_its_check_was_refreshed_ahead(
    tmp_path: Path,
) -> None:
    now = [0.0]
    async with gated_app("sqlite", tmp_path) as served:
        served.state.key_cache = KeyCache(2.0, clock=lambda: now[0])
        headers = await served.key("ci")
        await served.key("other")
        assert (await served.client.get("/v1/models", headers=headers)).status_code == 200
        await served.store.revoke_key("ci")
        now[0] += 1.2  # past half the check's life: still answered, re-checked behind it
        assert (await served.client.get("/v1/models", headers=headers)).status_code == 200
        # the background look-up, awaited rather than given time
        refreshing = [*served.state.key_cache._refreshing.values()]
        assert refreshing, "a check past half its life is asked again"
        await asyncio.gather(*refreshing)
        # well within the first check's TTL, the refreshed answer already refuses
        assert (await served.client.get("/v1/models", headers=headers)).status_code == 401


async def test_closing_the_cache_stops_a_look_up_still_running() -> None:
    now = [0.0]
    cache = KeyCache(2.0, clock=lambda: now[0])
    store = _SlowKeyStore()
    store.answer.set()
    assert await cache.has_keys(store) is True  # type: ignore[arg-type]
    store.answer.clear()
    now[0] += 1.5
    assert await cache.has_keys(store) is True  # type: ignore[arg-type]  # refresh starts
    await asyncio.sleep(0)
    assert store.asked == 2
    await cache.aclose()  # the server shuts down before the database answered
    assert cache._asking is None
