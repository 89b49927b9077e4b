"""APIError and the constructors for OpenAI's documented error cases."""

from __future__ import annotations

import pytest

from turnstream.protocol import APIError, errors


def test_to_body_has_exactly_openais_four_fields() -> None:
    error = APIError(400, "invalid_request_error", "bad", code="c", param="p")
    assert error.to_body() == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "p", "code": "c"}
    }


def test_headers_are_kept_for_the_http_response() -> None:
    error = errors.server_error(status=503, headers={"retry-after": "2"})
    assert error.status == 503
    assert error.headers == {"retry-after": "2"}


def test_the_message_is_the_exception_text() -> None:
    assert str(errors.model_not_found("x")) == "The requested model 'x' does not exist."


@pytest.mark.parametrize(
    ("error", "status", "code", "param", "message"),
    [
        (
            errors.conversation_locked(),
            400,
            "conversation_locked",
            "conversation",
            "Another process is currently operating on this conversation. "
            "Please retry in a few seconds.",
        ),
        (
            errors.previous_response_not_found("resp_1"),
            400,
            "previous_response_not_found",
            "previous_response_id",
            "Previous response with id 'resp_1' not found.",
        ),
        (
            errors.orphan_tool_output("call_1"),
            400,
            None,
            "input",
            "No tool call found for function call output with call_id call_1.",
        ),
        (
            errors.missing_tool_output("call_1"),
            400,
            None,
            "input",
            "No tool output found for function call call_1.",
        ),
        (
            errors.model_not_found("x"),
            400,
            "model_not_found",
            "model",
            "The requested model 'x' does not exist.",
        ),
        (
            errors.response_not_found("resp_1"),
            404,
            None,
            None,
            "Response with id 'resp_1' not found.",
        ),
        (
            errors.conversation_not_found("conv_1"),
            404,
            None,
            None,
            "Conversation with id 'conv_1' not found.",
        ),
        (
            errors.duplicate_item("fc_1"),
            400,
            None,
            "input",
            "Duplicate item found with id fc_1.",
        ),
        (
            errors.unknown_parameter("foo"),
            400,
            "unknown_parameter",
            "foo",
            "Unknown parameter: 'foo'.",
        ),
    ],
)
def test_each_documented_case_has_openais_status_code_param_and_message(
    error: APIError, status: int, code: str | None, param: str | None, message: str
) -> None:
    assert (error.status, error.type, error.code, error.param, error.message) == (
        status,
        "invalid_request_error",
        code,
        param,
        message,
    )


def test_malformed_json_starts_with_openais_sentence_and_carries_a_hint() -> None:
    error = errors.malformed_json()
    assert error.message.startswith("We could not parse the JSON body of your request. (HINT: ")
    assert error.message.endswith(")")
    assert error.param is None
    assert error.code is None


@pytest.mark.parametrize(
    ("error", "param"),
    [
        (errors.mutually_exclusive_parameters(), "conversation"),
        (errors.background_requires_store(), "background"),
        (errors.stream_options_without_stream(), "stream_options"),
    ],
)
def test_invalid_combinations_are_400_invalid_request_errors(error: APIError, param: str) -> None:
    assert (error.status, error.type, error.param) == (400, "invalid_request_error", param)
