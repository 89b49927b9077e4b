"""Acceptance for replicas (issue 9): real `turnstream serve` processes on one
PostgreSQL database, the test alternating between them as a load balancer would.

Three replicas share a fresh database for the module. The model that must hold the
conversation deterministically long is a Chat Completions upstream in the test
(`gated`), whose answer waits for an event the test sets; the rest use `echo`.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.databases import fresh_postgres_url, postgres_url
from tests.livesrv import ServerProcess, running_server, spawn_server
from tests.providers.fake_chat_upstream import FakeChatUpstream, echo_reply
from tests.tcpproxy import TCPProxy

LEASE_TTL = 6.0
"""The replicas' lease time: short, yet long enough that a heartbeat on this
loaded, shared 2-core machine never stalls past it."""
VICTIM_TTL = 2.0
"""The lease time of the replica the kill test kills, so its conversation frees
itself within the test."""
ROUNDS = 100
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look something up.",
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": ["q"],
        },
    }
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeChatUpstream]:
    with FakeChatUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def config(upstream: FakeChatUpstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "models.toml"
    path.write_text(
        f"""
[[models]]
name = "gated"
provider = "openai_chat"
base_url = "{upstream.base_url}"

[[models]]
name = "echo-slow"
provider = "echo"
delay = 0.02
"""
    )
    return path


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_postgres_url() as url:
        yield url


def spawn(
    directory: Path, name: str, config: Path, db_url: str, ttl: float = LEASE_TTL
) -> ServerProcess:
    return spawn_server(directory / f"{name}.db", config, "--lease-ttl", str(ttl), db_url=db_url)


@pytest.fixture(scope="module")
def replicas(
    database: str, config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    directory = tmp_path_factory.mktemp("replicas")
    with ThreadPoolExecutor(3) as pool:
        starting = [pool.submit(spawn, directory, name, config, database) for name in "abc"]
    spawned = [future.result() for future in starting]
    try:
        yield spawned
    finally:
        for server in spawned:
            server.stop()


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def sdk(server: ServerProcess) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def new_conversation(server: ServerProcess) -> str:
    conversation_id: str = httpx.post(f"{server.base_url}/conversations", json={}).json()["id"]
    return conversation_id


def item_texts(server: ServerProcess, conversation_id: str) -> list[tuple[str, str]]:
    page = httpx.get(
        f"{server.base_url}/conversations/{conversation_id}/items",
        params={"order": "asc", "limit": 100},
    ).json()
    return [(item["role"], item["content"][0]["text"]) for item in page["data"]]


class StreamReader:
    """Reads an SSE body in a thread: raw frames as they come, and when it ended."""

    def __init__(self, method: str, url: str, **kwargs: Any) -> None:
        self.frames: list[bytes] = []
        self.ended_at: float | None = None
        self.status: int | None = None
        self._thread = threading.Thread(target=self._read, args=(method, url), kwargs=kwargs)
        self._thread.start()

    def _read(self, method: str, url: str, **kwargs: Any) -> None:
        buffer = b""
        with httpx.stream(method, url, timeout=60, **kwargs) as response:
            self.status = response.status_code
            for chunk in response.iter_raw():
                buffer += chunk
                *complete, buffer = buffer.split(b"\n\n")
                self.frames.extend(f for f in complete if f and not f.startswith(b":"))
        self.ended_at = time.monotonic()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event_of(frame) for frame in self.frames]

    def wait_for(self, count: int, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while len(self.frames) < count:
            assert self._thread.is_alive() or len(self.frames) >= count, "the stream ended"
            assert time.monotonic() < deadline, f"only {len(self.frames)} frames came"
            time.sleep(0.01)

    def join(self, within: float = 20) -> None:
        self._thread.join(within)
        assert not self._thread.is_alive(), "the stream did not end"


def event_of(frame: bytes) -> dict[str, Any]:
    data = next(line for line in frame.split(b"\n") if line.startswith(b"data: "))
    event: dict[str, Any] = json.loads(data[6:])
    return event


def test_twenty_concurrent_requests_on_one_conversation_let_exactly_one_through(
    replicas: list[ServerProcess], upstream: FakeChatUpstream
) -> None:
    conversation_id = new_conversation(replicas[0])
    gate = threading.Event()
    # the one request that gets through waits in the model until the test says so
    upstream.default_reply = lambda body: dataclasses.replace(echo_reply(body), hold=gate)

    def send(i: int) -> httpx.Response:
        return httpx.post(
            f"{replicas[i % 3].base_url}/responses",
            json={"model": "gated", "input": f"turn {i}", "conversation": conversation_id},
            timeout=60,
        )

    try:
        with ThreadPoolExecutor(20) as pool:
            futures: list[Future[httpx.Response]] = [pool.submit(send, i) for i in range(20)]
            deadline = time.monotonic() + 30
            # every other request is answered while the winner still holds the lease
            while sum(future.done() for future in futures) < 19:
                assert time.monotonic() < deadline, "more than one request is still running"
                time.sleep(0.01)
            held = [i for i, future in enumerate(futures) if not future.done()]
            assert len(held) == 1
            gate.set()
            answers = [future.result() for future in futures]
    finally:
        gate.set()
        upstream.reset()

    winner = held[0]
    for i, answer in enumerate(answers):
        if i == winner:
            assert answer.status_code == 200
            assert answer.json()["status"] == "completed"
        else:
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] == "conversation_locked"
    assert item_texts(replicas[0], conversation_id) == [
        ("user", f"turn {winner}"),
        ("assistant", f"turn {winner}"),
    ]


def test_follow_ups_sent_at_response_completed_to_another_replica_never_fail(
    replicas: list[ServerProcess],
) -> None:
    clients = [sdk(server) for server in replicas]
    conversation_id = new_conversation(replicas[0])
    errors: list[tuple[int, Exception]] = []
    try:
        for i in range(ROUNDS):
            here, there = clients[i % 3], clients[(i + 1) % 3]
            if errors:
                break
            with here.responses.create(
                model="echo",
                input=f"lookup round {i}",
                tools=TOOLS,
                conversation=conversation_id,
                stream=True,
            ) as stream:
                for event in stream:
                    if event.type != "response.completed":
                        continue
                    # the report's pattern: act on response.completed at once, while
                    # the stream's body is still open, on whichever replica
                    call = event.response.output[0]
                    assert call.type == "function_call"
                    try:
                        answer = there.responses.create(
                            model="echo",
                            conversation=conversation_id,
                            tools=TOOLS,
                            input=[
                                {
                                    "type": "function_call_output",
                                    "call_id": call.call_id,
                                    "output": f"result {i}",
                                }
                            ],
                        )
                    except openai.APIError as exc:
                        errors.append((i, exc))
                        break
                    else:
                        assert answer.output_text == f"Tool results: result {i}"
    finally:
        for client in clients:
            client.close()
    assert errors == []
    listed = httpx.get(
        f"{replicas[0].base_url}/conversations/{conversation_id}/items", params={"limit": 1}
    ).json()
    assert listed["data"][0]["content"][0]["text"] == f"Tool results: result {ROUNDS - 1}"


def test_a_background_run_resumed_elsewhere_matches_byte_for_byte_and_a_third_cancels_it(
    replicas: list[ServerProcess],
) -> None:
    a, b, c = replicas
    after = 10
    from_a = StreamReader(
        "POST",
        f"{a.base_url}/responses",
        json={"model": "echo-slow", "input": words(6000), "background": True, "stream": True},
    )
    from_a.wait_for(after + 3)
    response_id = from_a.events[0]["response"]["id"]
    from_b = StreamReader(
        "GET",
        f"{b.base_url}/responses/{response_id}",
        params={"stream": "true", "starting_after": after},
    )
    from_b.wait_for(5)

    began = time.monotonic()
    cancelled = httpx.post(f"{c.base_url}/responses/{response_id}/cancel", timeout=60)
    # the run has minutes of words left: the cancel reached it rather than waiting
    # for its end (a ceiling far from both, not a speed claim)
    assert time.monotonic() - began < 30.0
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"

    from_a.join()
    from_b.join()
    assert from_b.status == 200
    assert from_a.events[-1]["response"]["status"] == "cancelled"
    expected = [frame for frame in from_a.frames if event_of(frame)["sequence_number"] > after]
    assert from_b.frames == expected


def test_a_killed_replica_s_run_fails_for_its_follower_and_frees_the_conversation(
    replicas: list[ServerProcess], config: Path, database: str, tmp_path: Path
) -> None:
    a, b, _ = replicas
    victim = spawn(tmp_path, "victim", config, database, ttl=VICTIM_TTL)
    try:
        conversation_id = new_conversation(a)
        created = httpx.post(
            f"{victim.base_url}/responses",
            json={
                "model": "echo-slow",
                "input": words(3000),
                "background": True,
                "conversation": conversation_id,
            },
        ).json()
        follower = StreamReader(
            "GET",
            f"{a.base_url}/responses/{created['id']}",
            params={"stream": "true", "starting_after": 0},
        )
        follower.wait_for(5)
        victim.kill()
        killed = time.monotonic()

        deadline = killed + 4 * VICTIM_TTL
        while True:
            answer = httpx.post(
                f"{b.base_url}/responses",
                json={"model": "echo", "input": "after the crash", "conversation": conversation_id},
            )
            if answer.status_code == 200:
                break
            assert answer.json()["error"]["code"] == "conversation_locked"
            assert time.monotonic() < deadline, "the dead replica's lease never lapsed"
            time.sleep(0.05)
        taken = time.monotonic()
        follower.join(4 * VICTIM_TTL)
    finally:
        victim.stop()

    assert follower.events[-1]["type"] == "response.failed"
    assert follower.events[-1]["response"]["status"] == "failed"
    # "within the lease time": the dead replica's lease and heartbeat lapse at most
    # VICTIM_TTL after the kill; the others' sweep (every LEASE_TTL / 8), its NOTIFY
    # to the follower and this machine's load add under a lease time more
    assert follower.ended_at is not None
    assert follower.ended_at - killed < 2 * VICTIM_TTL
    assert taken - killed < 2 * VICTIM_TTL
    assert httpx.get(f"{b.base_url}/responses/{created['id']}").json()["status"] == "failed"
    # the dead run added nothing to the conversation
    assert item_texts(b, conversation_id) == [
        ("user", "after the crash"),
        ("assistant", "after the crash"),
    ]


def test_the_database_going_away_mid_stream_is_a_clean_error_then_it_serves_again(
    config: Path, database: str, tmp_path: Path
) -> None:
    proxy = TCPProxy.in_front_of(database).start()
    server = spawn(tmp_path, "cut", config, proxy.url_for(database))
    base = server.base_url
    try:
        conversation_id = new_conversation(server)
        before = {"model": "echo", "input": "before", "conversation": conversation_id}
        assert httpx.post(f"{base}/responses", json=before).status_code == 200
        stream = StreamReader(
            "POST",
            f"{base}/responses",
            json={
                "model": "echo-slow",
                "input": words(100),
                "conversation": conversation_id,
                "stream": True,
            },
        )
        stream.wait_for(5)
        proxy.cut()  # every connection of this server dies, new ones are refused
        stream.join()
        # the stream had started: its end is a response.failed, not a cut body
        assert stream.events[-1]["type"] == "response.failed"
        assert stream.events[-1]["response"]["error"]["code"] == "server_error"
        failed_id = stream.events[-1]["response"]["id"]

        # a request that has not started streaming: a retryable 503
        refused = httpx.post(f"{base}/responses", json={"model": "echo", "input": "now?"})
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "server_error"
        assert refused.headers["retry-after"] == "1"

        proxy.restore()
        deadline = time.monotonic() + 4 * LEASE_TTL
        after = {"model": "echo", "input": "after", "conversation": conversation_id}
        while (answer := httpx.post(f"{base}/responses", json=after)).status_code != 200:
            # the failed turn's lease could not be released while the database
            # was away: it lapses after the lease time
            assert answer.json()["error"]["code"] == "conversation_locked"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        while httpx.get(f"{base}/responses/{failed_id}").json()["status"] != "failed":
            assert time.monotonic() < deadline, "the failed response was never stored"
            time.sleep(0.05)
        assert item_texts(server, conversation_id) == [
            ("user", "before"),
            ("assistant", "before"),
            ("user", "after"),
            ("assistant", "after"),
        ]
    finally:
        server.stop()
        proxy.close()


def test_a_replica_whose_connections_are_terminated_mid_stream_finishes_and_serves_on(
    database: str, tmp_path: Path
) -> None:
    name = f"turnstream_{secrets.token_hex(4)}"
    # the connections of this server only, by name: the machine's PostgreSQL is shared
    url = f"{database}&application_name={name}"
    with running_server(tmp_path / "t.db", db_url=url) as live:
        conversation_id = new_conversation_on(live.base_url)
        reader = StreamReader(
            "POST",
            f"{live.base_url}/responses",
            json={
                "model": "echo-slow",
                "input": words(60),
                "conversation": conversation_id,
                "stream": True,
            },
        )
        reader.wait_for(5)
        assert terminate_backends(name) > 0
        reader.join()
        # the turn is written on a fresh connection (the pool checks before lending)
        assert reader.events[-1]["type"] == "response.completed"
        answer = httpx.post(
            f"{live.base_url}/responses",
            json={"model": "echo", "input": "next", "conversation": conversation_id},
        )
        assert answer.status_code == 200
        listed = httpx.get(f"{live.base_url}/conversations/{conversation_id}/items").json()
        assert len(listed["data"]) == 4


def new_conversation_on(base_url: str) -> str:
    conversation_id: str = httpx.post(f"{base_url}/conversations", json={}).json()["id"]
    return conversation_id


def terminate_backends(application_name: str) -> int:
    import asyncio

    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

    async def terminate() -> int:
        conn = await asyncpg.connect(postgres_url())
        try:
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = $1",
                application_name,
            )
        finally:
            await conn.close()
        return len(rows)

    return asyncio.run(terminate())
