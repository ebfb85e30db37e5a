"""The legacy completions dialect's own frames (written only when an event is not passed
through): exact ``text_completion`` chunks, as the openai SDK reads them."""

from __future__ import annotations

import json

import pytest
from openai.types import Completion as SdkCompletion

from runestone.messages import Completion, ToolCallDelta, Usage
from runestone.server.completions_schema import CompletionsDialect, TextCompletionEncoder
from runestone.server.errors import ApiError


def _chunks(frames: bytes) -> list[str]:
    return [frame.removeprefix("data: ") for frame in frames.decode().split("\n\n") if frame]


def test_a_stream_is_text_completion_chunks_then_done() -> None:
    encoder = TextCompletionEncoder("m", include_usage=True, completion_id="cmpl-1", created=5)
    assert encoder.opening() == b""
    assert encoder.tool_call(ToolCallDelta(0, "c", "f", "{}")) == b""
    encoder.set_model("upstream-model")
    frames = encoder.text("Hel") + encoder.text("lo") + encoder.closing("stop", Usage(3, 2))
    *chunks, done = _chunks(frames)
    assert done == "[DONE]"
    texts = [json.loads(chunk) for chunk in chunks[:-2]]
    assert [chunk["choices"] for chunk in texts] == [
        [{"text": text, "index": 0, "logprobs": None, "finish_reason": None}]
        for text in ("Hel", "lo")
    ]
    # (The SDK reads chunks without validating them: a text chunk's null finish_reason is
    # not among its type's literals, so only the last two are checked by its type.)
    finish = SdkCompletion.model_validate_json(chunks[-2])
    assert [(c.text, c.finish_reason) for c in finish.choices] == [("", "stop")]
    assert {(c["id"], c["object"], c["created"], c["model"]) for c in texts} == {
        ("cmpl-1", "text_completion", 5, "upstream-model")
    }
    usage = SdkCompletion.model_validate_json(chunks[-1])
    assert usage.choices == []
    assert usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (3, 2)


def test_without_include_usage_a_stream_ends_at_its_finish() -> None:
    closing = _chunks(TextCompletionEncoder("m").closing("length", Usage(1, 1)))
    assert len(closing) == 2
    assert json.loads(closing[0])["choices"][0]["finish_reason"] == "length"
    assert closing[1] == "[DONE]"


def test_an_error_is_openais_error_shape_and_no_done() -> None:
    frame = TextCompletionEncoder.error(ApiError(502, "upstream cut", code="stream_cut"))
    (chunk,) = _chunks(frame)
    error = json.loads(chunk)["error"]
    assert error["message"] == "upstream cut"
    assert error["code"] == "stream_cut"


def test_a_whole_answer_is_a_text_completion() -> None:
    dialect = CompletionsDialect()
    call = dialect.decode(b'{"model": "m", "prompt": "Hi"}')
    completion = Completion(text="Hello", finish_reason="stop", usage=Usage(2, 1), model="up")
    body = SdkCompletion.model_validate(dialect.whole(completion, call))
    assert body.object == "text_completion"
    assert body.model == "up"
    assert body.id.startswith("cmpl-")
    assert [(c.text, c.index, c.finish_reason) for c in body.choices] == [("Hello", 0, "stop")]
    assert body.usage is not None
    assert body.usage.total_tokens == 3


@pytest.mark.parametrize("status", [400, 429, 503])
def test_error_bodies_are_openais(status: int) -> None:
    error = ApiError(status, "no", code="x")
    assert CompletionsDialect().error_body(error) == error.openai_body()
