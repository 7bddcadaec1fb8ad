"""Function calling in the fake Gemini API, over real TCP with aiohttp's client."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes._gemini_tools import CALL_AFTER_USER, RESPONSE_AFTER_CALL, SAME_COUNT
from tests.fakes.fake_gemini import FakeGemini

HEADERS = {"x-goog-api-key": "fake-gemini-key"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "city": {"type": "string"},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER = {"name": "get_weather", "description": "The weather.", "parametersJsonSchema": SCHEMA}
TIME = {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {}}}}
TOOLS = [{"functionDeclarations": [WEATHER, TIME]}]
ASK = {"role": "user", "parts": [{"text": "Lyon"}]}
ARGS = {"city": "Lyon", "unit": "celsius"}


def call(name: str = "get_weather", signature: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": name, "args": ARGS}}
    return part if signature is None else {**part, "thoughtSignature": signature}


def response(output: Any = "12°C", name: str = "get_weather") -> dict[str, Any]:
    return {"functionResponse": {"name": name, "response": {"output": output}}}


def turn(role: str, *parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": role, "parts": list(parts)}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def post(
    fake: FakeGemini,
    session: aiohttp.ClientSession,
    body: dict[str, Any],
    model: str = "gemini-2.5-flash",
    method: str = "streamGenerateContent?alt=sse",
) -> tuple[int, Any]:
    url = f"{fake.base_url}/models/{model}:{method}"
    async with session.post(url, json=body, headers=HEADERS) as resp:
        raw = await resp.text()
    if resp.status != 200 or not method.endswith("sse"):
        return resp.status, json.loads(raw)
    events = raw.split("\r\n\r\n")
    return resp.status, [json.loads(event.removeprefix("data: ")) for event in events[:-1]]


async def test_a_declared_function_is_called_whole_in_one_chunk(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    body = {"contents": [ASK], "tools": TOOLS}
    status, chunks = await post(fake, session, body)
    assert status == 200
    [chunk] = chunks
    candidate = chunk["candidates"][0]
    assert candidate["finishReason"] == "STOP"  # as for text: Gemini has no "tool use" reason
    [part] = candidate["content"]["parts"]
    assert part == call(signature=fake.signatures[0])
    assert base64.b64decode(part["thoughtSignature"], validate=True)
    assert fake.expected_tool_call(body) == ("get_weather", ARGS)
    assert chunk["usageMetadata"]["candidatesTokenCount"] > 0


async def test_models_that_do_not_think_do_not_sign(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    body = {"contents": [ASK], "tools": TOOLS}
    _, answer = await post(fake, session, body, "gemini-2.0-flash", "generateContent")
    assert answer["candidates"][0]["content"]["parts"] == [call()]
    assert fake.signatures == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"mode": "NONE"}, None),
        ({"mode": "AUTO"}, "get_weather"),
        ({"mode": "ANY", "allowedFunctionNames": ["get_time"]}, "get_time"),
        ({"mode": "ANY", "allowed_function_names": ["get_time"]}, "get_time"),
    ],
)
async def test_function_calling_config(
    fake: FakeGemini, session: aiohttp.ClientSession, config: dict[str, Any], expected: str | None
) -> None:
    body = {"contents": [ASK], "tools": TOOLS, "tool_config": {"function_calling_config": config}}
    _, chunks = await post(fake, session, body)
    parts = [part for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"]]
    if expected is None:
        assert "".join(part["text"] for part in parts) == "Hello! You said: Lyon"
        assert not fake.will_call_tool(body)
        with pytest.raises(ValueError, match="answered with text"):
            fake.expected_tool_call(body)
    else:
        assert [part["functionCall"]["name"] for part in parts] == [expected]
        assert fake.expected_tool_call(body)[0] == expected


async def test_function_responses_get_the_tool_said(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    contents = [
        ASK,
        turn("model", call(), call("get_time")),
        turn("user", response(), response({"hour": 9}, "get_time")),
    ]
    _, chunks = await post(fake, session, {"contents": contents, "tools": TOOLS})
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == 'The tool said: 12°C; {"hour": 9}' == fake.expected_reply(contents)


async def test_reply_replaces_text_but_not_calls(session: aiohttp.ClientSession) -> None:
    async with FakeGemini(reply="Fixed.") as fake:
        _, called = await post(fake, session, {"contents": [ASK], "tools": TOOLS})
        _, text = await post(fake, session, {"contents": [ASK]})
    assert "functionCall" in called[0]["candidates"][0]["content"]["parts"][0]
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in text) == "Fixed."


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ([ASK, turn("user", response())], RESPONSE_AFTER_CALL),
        ([ASK, turn("model", {"text": "hm"}), turn("user", response())], RESPONSE_AFTER_CALL),
        ([ASK, turn("model", call()), turn("user", response(), response())], SAME_COUNT),
        ([turn("model", call()), turn("user", response())], CALL_AFTER_USER),
        ([ASK, turn("model", {"text": "hm"}), turn("model", call())], CALL_AFTER_USER),
    ],
    ids=["response-first", "response-after-text", "two-responses", "call-first", "model-twice"],
)
async def test_tool_turns_out_of_order_are_400(
    fake: FakeGemini,
    session: aiohttp.ClientSession,
    contents: list[dict[str, Any]],
    message: str,
) -> None:
    status, answer = await post(fake, session, {"contents": contents})
    assert status == 400
    assert answer["error"] == {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}


async def test_gemini_3_wants_the_current_turns_signatures(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    earlier = [ASK, turn("model", call()), turn("user", response()), turn("model", {"text": "ok"})]
    current = [ASK, turn("model", call(), call("get_time")), turn("user", response(), response())]
    status, answer = await post(
        fake, session, {"contents": earlier + current}, "gemini-3-flash-preview"
    )
    assert status == 400
    message = answer["error"]["message"]
    assert message.startswith("Function call is missing a thought_signature in functionCall parts.")
    assert "function call `default_api:get_weather` , position 6." in message
    # Signed on its first call only, as Gemini signs parallel calls: accepted, and an unsigned
    # call in an earlier turn is no matter; nor is any of it to Gemini 2.5.
    current[1] = turn("model", call(signature="c2lnbmVk"), call("get_time"))
    status, _ = await post(fake, session, {"contents": earlier + current}, "gemini-3-flash-preview")
    assert status == 200
    current[1] = turn("model", call(), call("get_time"))
    status, _ = await post(fake, session, {"contents": earlier + current}, "gemini-2.5-pro")
    assert status == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"tools": [{"functionDeclarations": [{**TIME, "parameters": SCHEMA}]}]},
            'Invalid JSON payload received. Unknown name "additionalProperties" at'
            " 'tools[0].function_declarations[0].parameters': Cannot find field.",
        ),
        (
            {
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {
                                    "type": "object",
                                    "properties": {"a": {"type": "string", "$ref": "#/x"}},
                                },
                            }
                        ]
                    }
                ]
            },
            'Invalid JSON payload received. Unknown name "$ref" at'
            " 'tools[0].function_declarations[0].parameters.properties[0].value': Cannot find"
            " field.",
        ),
        (
            {"toolConfig": {"functionCallingConfig": {"mode": "REQUIRED"}}},
            "Invalid value at 'tool_config.function_calling_config.mode'"
            " (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.Mode),"
            ' "REQUIRED"',
        ),
        (
            {"contents": [ASK, turn("model", call(signature="@@"))]},
            "Invalid value at 'contents[1].parts[0].thought_signature' (TYPE_BYTES), Base64"
            ' decoding failed for "@@"',
        ),
        (
            {"contents": [ASK, turn("model", {"functionCall": {"name": "f", "arguments": "{}"}})]},
            'Invalid JSON payload received. Unknown name "arguments" at'
            " 'contents[1].parts[0].function_call': Cannot find field.",
        ),
    ],
    ids=["json-schema-in-parameters", "nested", "mode", "signature", "call-field"],
)
async def test_what_the_proto_parser_refuses(
    fake: FakeGemini, session: aiohttp.ClientSession, body: dict[str, Any], message: str
) -> None:
    status, answer = await post(fake, session, {"contents": [ASK], **body})
    assert status == 400
    assert answer["error"]["message"] == message
    assert answer["error"]["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
