"""The chat page behind API keys: a login that keeps the key in an HttpOnly,
SameSite=Strict cookie, cross-site requests refused, chats kept per project."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from turnstream.cli._apps import create_serving_app
from turnstream.cli._server_thread import ServerThread
from turnstream.server.settings import Settings
from turnstream.storage.sql import SQLStore


@contextlib.contextmanager
def serving(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    app = create_serving_app(
        Settings(db_path=tmp_path / "t.db", enable_local_model=False, auth_cache_ttl=0.0)
    )
    with ServerThread(app, name="chat-login") as server:
        store: SQLStore = app.state.turnstream.store
        yield server.base_url, (store, server.call)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    with serving(tmp_path) as served:
        yield served


@contextlib.contextmanager
def _login(base: str, secret: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=30) as client:
        reply = client.post("/chat/login", json={"key": secret})
        assert reply.status_code == 200, reply.text
        yield client


def test_login_keeps_the_key_in_a_strict_httponly_cookie(site: tuple[str, Any]) -> None:
    base, (store, call) = site
    _, secret = call(store.create_key("alice", project="alpha"))
    with httpx.Client(base_url=base) as anonymous:
        assert anonymous.get("/chat/api/conversations").status_code == 401
        assert anonymous.post("/chat/login", json={"key": "sk-ts-nope-nope"}).status_code == 401
        reply = anonymous.post("/chat/login", json={"key": secret})
    assert reply.status_code == 200
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    with _login(base, secret) as client:
        assert client.get("/chat/api/conversations").status_code == 200
        assert client.get("/v1/models").status_code == 200  # the page reads /v1 too
        # but writing /v1 takes the Authorization header, never the cookie alone
        assert client.post("/v1/conversations", json={}).status_code == 401


def test_cross_site_chat_requests_are_refused(site: tuple[str, Any]) -> None:
    base, (store, call) = site
    _, secret = call(store.create_key("alice"))
    with _login(base, secret) as client:
        body = {"message": "hi", "model": "echo"}
        for headers in ({"sec-fetch-site": "cross-site"}, {"origin": "https://evil.example"}):
            reply = client.post("/chat/api/turn", json=body, headers=headers)
            assert reply.status_code == 403, headers
        same = client.post("/chat/api/turn", json=body, headers={"sec-fetch-site": "same-origin"})
        assert same.status_code == 200
        assert '"type": "turn"' in same.text or '"type":"turn"' in same.text


def test_a_chat_belongs_to_the_project_of_the_key_that_made_it(site: tuple[str, Any]) -> None:
    base, (store, call) = site
    _, alice = call(store.create_key("alice", project="alpha"))
    _, bob = call(store.create_key("bob", project="beta"))
    with _login(base, alice) as client:
        turn = client.post("/chat/api/turn", json={"message": "alpha's secret", "model": "echo"})
        assert turn.status_code == 200
        [chat] = client.get("/chat/api/conversations").json()["data"]
    assert call(store.scoped("alpha").get_conversation(chat["id"])) is not None
    with _login(base, bob) as client:
        assert client.get("/chat/api/conversations").json()["data"] == []
        client.delete(f"/chat/api/conversations/{chat['id']}")
    with _login(base, alice) as client:
        assert [c["id"] for c in client.get("/chat/api/conversations").json()["data"]] == [
            chat["id"]
        ]
