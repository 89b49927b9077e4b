"""Every rejection of `POST /v1/responses` in OpenAI's error shape, before any stream."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.livesrv import LiveServer

CALL = {"type": "function_call", "call_id": "call_a", "name": "f", "arguments": "{}"}
OUTPUT = {"type": "function_call_output", "call_id": "call_a", "output": "ok"}


def post(live: LiveServer, body: Any, **kwargs: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(
            f"{live.base_url}/responses", content=body, headers={"content-type": "application/json"}
        )
    return httpx.post(f"{live.base_url}/responses", json=body, **kwargs)


def error(resp: httpx.Response) -> dict[str, Any]:
    assert resp.headers["content-type"].startswith("application/json"), (
        "errors are JSON, never a stream"
    )
    assert resp.headers["x-request-id"].startswith("req_")
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    result: dict[str, Any] = body["error"]
    return result


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_json_is_a_400_with_openais_message(
    live_server: LiveServer, stream: bool
) -> None:
    resp = post(live_server, b'{"model": "echo", "input": ')
    assert resp.status_code == 400
    err = error(resp)
    assert err["message"].startswith("We could not parse the JSON body of your request. (HINT:")
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", None, None)


def test_an_unknown_parameter_is_a_400_naming_it(live_server: LiveServer) -> None:
    resp = post(live_server, {"model": "echo", "input": "hi", "temprature": 0.2})
    assert resp.status_code == 400
    err = error(resp)
    assert err["param"] == "temprature"
    assert err["message"] == "Unknown parameter: 'temprature'."


@pytest.mark.parametrize("stream", [False, True])
def test_an_unknown_model_is_model_not_found(live_server: LiveServer, stream: bool) -> None:
    resp = post(live_server, {"model": "gpt-nope", "input": "hi", "stream": stream})
    assert resp.status_code == 400
    assert error(resp) == {
        "message": "The requested model 'gpt-nope' does not exist.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }


@pytest.mark.parametrize("stream", [False, True])
def test_an_unknown_previous_response_is_previous_response_not_found(
    live_server: LiveServer, stream: bool
) -> None:
    resp = post(
        live_server,
        {"model": "echo", "input": "hi", "previous_response_id": "resp_missing", "stream": stream},
    )
    assert resp.status_code == 400
    assert error(resp) == {
        "message": "Previous response with id 'resp_missing' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }


@pytest.mark.parametrize("stream", [False, True])
def test_an_orphan_tool_output_is_rejected(live_server: LiveServer, stream: bool) -> None:
    resp = post(live_server, {"model": "echo", "input": [OUTPUT], "stream": stream})
    assert resp.status_code == 400
    assert error(resp) == {
        "message": "No tool call found for function call output with call_id call_a.",
        "type": "invalid_request_error",
        "param": "input",
        "code": None,
    }


def test_a_missing_tool_output_in_manual_replay_is_rejected(live_server: LiveServer) -> None:
    resp = post(
        live_server,
        {
            "model": "echo",
            "input": [{"role": "user", "content": "hi"}, CALL, {"role": "user", "content": "and?"}],
        },
    )
    assert resp.status_code == 400
    assert error(resp)["message"] == "No tool output found for function call call_a."


def test_continuing_a_chain_without_the_calls_output_is_rejected(live_server: LiveServer) -> None:
    tool = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}
    first = post(live_server, {"model": "echo", "input": "call f", "tools": [tool]}).json()
    call_id = first["output"][0]["call_id"]
    resp = post(
        live_server, {"model": "echo", "previous_response_id": first["id"], "input": "never mind"}
    )
    assert resp.status_code == 400
    err = error(resp)
    assert err["message"] == f"No tool output found for function call {call_id}."
    assert err["param"] == "input"


def test_a_paired_call_and_output_in_manual_replay_is_accepted(live_server: LiveServer) -> None:
    resp = post(
        live_server, {"model": "echo", "input": [{"role": "user", "content": "hi"}, CALL, OUTPUT]}
    )
    assert resp.status_code == 200
    assert "ok" in resp.json()["output"][0]["content"][0]["text"]


def test_conversation_with_previous_response_id_is_rejected(live_server: LiveServer) -> None:
    resp = post(
        live_server,
        {
            "model": "echo",
            "input": "hi",
            "previous_response_id": "resp_x",
            "conversation": "conv_x",
        },
    )
    assert resp.status_code == 400
    err = error(resp)
    assert err["param"] == "conversation"
    assert "previous_response_id" in err["message"]


def test_stream_options_without_stream_is_rejected(live_server: LiveServer) -> None:
    resp = post(
        live_server,
        {"model": "echo", "input": "hi", "stream_options": {"include_obfuscation": False}},
    )
    assert resp.status_code == 400
    assert error(resp)["param"] == "stream_options"


def test_background_without_store_is_rejected(live_server: LiveServer) -> None:
    resp = post(live_server, {"model": "echo", "input": "hi", "background": True, "store": False})
    assert resp.status_code == 400
    assert error(resp)["param"] == "background"


def test_unknown_response_ids_are_404_on_every_route(live_server: LiveServer) -> None:
    base = live_server.base_url
    for method, path in [
        ("GET", "/responses/resp_nope"),
        ("DELETE", "/responses/resp_nope"),
        ("GET", "/responses/resp_nope/input_items"),
    ]:
        resp = httpx.request(method, base + path)
        assert resp.status_code == 404, path
        assert error(resp)["message"] == "Response with id 'resp_nope' not found."


def test_a_streamed_get_of_a_non_background_response_is_404(live_server: LiveServer) -> None:
    created = post(live_server, {"model": "echo", "input": "hi"}).json()
    resp = httpx.get(f"{live_server.base_url}/responses/{created['id']}", params={"stream": "true"})
    assert resp.status_code == 404


@pytest.mark.parametrize("limit", [0, 101])
def test_input_items_limit_out_of_range_is_a_400(live_server: LiveServer, limit: int) -> None:
    created = post(live_server, {"model": "echo", "input": "hi"}).json()
    resp = httpx.get(
        f"{live_server.base_url}/responses/{created['id']}/input_items", params={"limit": limit}
    )
    assert resp.status_code == 400
    assert error(resp)["param"] == "limit"


def test_unknown_routes_answer_in_openais_error_shape(live_server: LiveServer) -> None:
    resp = httpx.get(f"{live_server.base_url}/nothing-here")
    assert resp.status_code == 404
    assert error(resp)["type"] == "invalid_request_error"
