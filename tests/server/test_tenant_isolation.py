"""Two projects on one server: every route, driven with the other project's ids,
answers exactly as for ids that do not exist, and changes nothing (both backends)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.databases import BACKENDS

from .gated import Gated, gated_app


@pytest.fixture(params=BACKENDS)
async def gated(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Gated]:
    async with gated_app(str(request.param), tmp_path) as served:
        yield served


def _user(text: str) -> dict[str, str]:
    return {"type": "message", "role": "user", "content": text}


async def _finished(client: httpx.AsyncClient, response_id: str, headers: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 30  # a ceiling for a hang on a loaded machine
    while time.monotonic() < deadline:
        body: dict[str, Any] = (
            await client.get(f"/v1/responses/{response_id}", headers=headers)
        ).json()
        if body["status"] not in ("queued", "in_progress"):
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"{response_id} did not finish")


def _shape(reply: httpx.Response, *ids: str) -> tuple[int, str, list[str]]:
    """Status, body with the ids masked, and header names: all a client can see."""
    text = reply.text
    for masked in ids:
        text = text.replace(masked, "ID")
    names = sorted(k for k in reply.headers if k not in ("x-request-id", "content-length"))
    return reply.status_code, text, names


# (method, path template, body): every route that names a response or a conversation
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/v1/responses/{resp}", None),
    ("GET", "/v1/responses/{resp}?stream=true", None),
    ("GET", "/v1/responses/{resp}?stream=true&starting_after=0", None),
    ("GET", "/v1/responses/{resp}/input_items", None),
    ("POST", "/v1/responses/{resp}/cancel", None),
    ("DELETE", "/v1/responses/{resp}", None),
    ("POST", "/v1/responses", {"model": "echo", "input": "hi", "previous_response_id": "{resp}"}),
    ("POST", "/v1/responses", {"model": "echo", "input": "hi", "conversation": "{conv}"}),
    ("GET", "/v1/conversations/{conv}", None),
    ("POST", "/v1/conversations/{conv}", {"metadata": {"x": "y"}}),
    ("GET", "/v1/conversations/{conv}/items", None),
    ("POST", "/v1/conversations/{conv}/items", {"items": [_user("intruder")]}),
    ("GET", "/v1/conversations/{conv}/items/{item}", None),
    ("DELETE", "/v1/conversations/{conv}/items/{item}", None),
    ("DELETE", "/v1/conversations/{conv}", None),
]


def _fill(template: Any, ids: dict[str, str]) -> Any:
    text = json.dumps(template)
    for name, value in ids.items():
        text = text.replace("{" + name + "}", value)
    return json.loads(text)


async def _snapshot(gated: Gated, ids: dict[str, str], headers: Any) -> Any:
    client = gated.client
    return (
        await _finished(client, ids["resp"], headers),
        await _finished(client, ids["conv_resp"], headers),
        (await client.get(f"/v1/responses/{ids['resp']}/input_items", headers=headers)).json(),
        (await client.get(f"/v1/conversations/{ids['conv']}", headers=headers)).json(),
        (await client.get(f"/v1/conversations/{ids['conv']}/items", headers=headers)).json(),
        await gated.store.list_events(ids["resp"], after=None),
    )


async def test_another_projects_ids_behave_exactly_like_missing_ones(gated: Gated) -> None:
    alpha = await gated.key("alice", project="alpha")
    beta = await gated.key("bob", project="beta")
    client = gated.client
    conv = (
        await client.post(
            "/v1/conversations", json={"items": [_user("alpha's secret")]}, headers=alpha
        )
    ).json()["id"]
    resp = (
        await client.post(
            "/v1/responses",
            json={"model": "echo", "input": "alpha's", "background": True},
            headers=alpha,
        )
    ).json()["id"]
    conv_resp = (
        await client.post(
            "/v1/responses",
            json={"model": "echo", "input": "in conv", "conversation": conv},
            headers=alpha,
        )
    ).json()["id"]
    item = (await client.get(f"/v1/conversations/{conv}/items", headers=alpha)).json()["data"][0][
        "id"
    ]
    ids = {"resp": resp, "conv": conv, "item": item, "conv_resp": conv_resp}
    missing = {
        "resp": "resp_" + "0" * (len(resp) - 5),
        "conv": "conv_" + "0" * (len(conv) - 5),
        "item": item,
    }
    before = await _snapshot(gated, ids, alpha)

    for method, path, body in ROUTES:
        foreign = await client.request(
            method, _fill(path, ids), json=_fill(body, ids), headers=beta
        )
        absent = await client.request(
            method, _fill(path, missing), json=_fill(body, missing), headers=beta
        )
        assert foreign.status_code in (400, 404), (method, path, foreign.text)
        assert _shape(foreign, resp, conv) == _shape(absent, missing["resp"], missing["conv"]), (
            method,
            path,
        )

    # nothing of alpha's was read, changed, deleted, chained from or locked
    assert await _snapshot(gated, ids, alpha) == before
    follow_up = await client.post(
        "/v1/responses",
        json={"model": "echo", "input": "still mine", "conversation": conv},
        headers=alpha,
    )
    assert follow_up.status_code == 200, follow_up.text
    chained = await client.post(
        "/v1/responses",
        json={"model": "echo", "input": "next", "previous_response_id": resp},
        headers=alpha,
    )
    assert chained.status_code == 200, chained.text
    # and beta's own work lands in beta, invisible to alpha
    beta_conv = (await client.post("/v1/conversations", json={}, headers=beta)).json()["id"]
    assert (await client.get(f"/v1/conversations/{beta_conv}", headers=alpha)).status_code == 404
    assert (await client.get(f"/v1/conversations/{beta_conv}", headers=beta)).status_code == 200
