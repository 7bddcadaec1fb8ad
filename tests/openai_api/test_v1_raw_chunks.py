"""/v1's fast path for text deltas (``Chunks.allow_raw``): a steady-state text delta goes to
the client as the reply's head and the provider's own ``choices`` bytes, with no decode and
encode of the whole chunk. The client gets the very bytes of the full path: over real TCP
for scripted replies (text, tool calls, n = 2, finishes, usage, unknown fields), and for
generated streams through the reader and the output directly; and every line that is not a
plain text delta of the steady state takes the full path."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, MutableMapping
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatwire.dialects.base import Request
from chatwire.dialects.openai_chat import EventsOutput
from chatwire.families.openai_reply import Chunks
from chatwire.gateway.call import ChatCall
from chatwire.gateway.lines import StreamFailed
from chatwire.timing import Timing
from tests.conftest import ServerFactory
from tests.scripted import END, SSE_HEAD, ScriptedUpstream, event

_encode = msgspec.json.encode


class FullPath(Chunks):
    """The same reader without the fast path: every chunk decoded and encoded again."""

    __slots__ = ()
    allow_raw = None  # type: ignore[assignment]


def line(choices: list[Any], **top: Any) -> bytes:
    """An OpenAI-style chunk, compact, as OpenAI and msgspec write them."""
    body = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 7, "model": "up"}
    return _encode({**body, **top, "choices": choices})


def text(content: str, index: int = 0, **extra: Any) -> dict[str, Any]:
    return {"index": index, "delta": {"content": content}, "finish_reason": None, **extra}


def finish(reason: str, index: int = 0) -> dict[str, Any]:
    return {"index": index, "delta": {}, "finish_reason": reason}


def piece(index: int, call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    call: dict[str, Any] = {"index": index, "function": function}
    if call_id is not None:
        call.update(id=call_id, type="function")
    return {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}


USAGE = {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
ROLE = line(
    [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None}}],
    system_fingerprint="fp_1",
    usage=None,
)

# (the line, whether the fast path takes it; None: unless a finish is held before it)
Reply = list[tuple[bytes, bool | None]]
TEXT_REPLY: Reply = [
    (ROLE, False),  # the first delta gets its role
    (line([text("Hel", logprobs=None)], system_fingerprint="fp_1", usage=None), True),
    (line([text('lo, "wörld" ✓\n')]), True),
    (line([{"index": 0, "delta": {"reasoning_content": "hm"}, "finish_reason": None}]), True),
    (line([text("", index=0)], obfuscation="abc"), True),
    (line([text(" x", audio={"id": "a"})]), False),  # a choice field the fast path lacks
    (line([{"index": 0, "delta": {"content": " y", "audio": None}}]), False),  # a delta's
    (line([text(" z")], x_provider="p"), False),  # a top-level field it lacks
    (line([text("!")]), True),
    (line([finish("stop")]), False),
    (line([], usage=USAGE), False),
]
TOOL_REPLY: Reply = [
    (ROLE, False),
    (line([text("Let me look.")]), True),
    (line([piece(0, "call_1", "weather", "")]), False),
    (line([text(" (calling)")]), False),  # while a call is gathered
    (line([piece(0, None, None, '{"city":')]), False),
    (line([piece(0, None, None, '"Lyon"}')]), False),
    (line([piece(1, "call_2", "time", "{}")]), False),
    (line([finish("tool_calls")]), False),
    (line([], usage=USAGE), False),
]
TWO_CHOICES: Reply = [
    (line([text("A", 0, logprobs=None), text("B", 1, logprobs=None)], usage=None), False),
    (line([text("a", 0)]), True),
    (line([text("b", 1)]), True),
    (line([text("aa", 0), text("bb", 1)]), True),
    (line([finish("stop", 0)]), False),
    # With the finish held (OpenAI without include_usage), the rest is held too.
    (line([text("bbb", 1)]), None),
    (line([finish("length", 1)]), False),
    (line([], usage=USAGE), False),
]
REPLIES = {"text": TEXT_REPLY, "tools": TOOL_REPLY, "n2": TWO_CHOICES}


def script(reply: Reply) -> list[bytes]:
    # Two lines per upstream read, so that some reads hold lines of both paths.
    events = [event(data) for data, _ in reply] + [event(b"[DONE]")]
    return [SSE_HEAD, *(b"".join(events[i : i + 2]) for i in range(0, len(events), 2)), END]


CREATED = re.compile(rb'"created":\d+')


async def streamed(
    make_server: ServerFactory, provider: str, upstream: ScriptedUpstream, include_usage: bool
) -> bytes:
    server = await make_server(
        **{f"{provider}_base_url": upstream.base_url, f"{provider}_api_key": "k"}
    )
    body: dict[str, Any] = {
        "model": f"{provider}/some-model",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    headers = {**server.auth, "x-request-id": "raw-chunks-1"}
    async with server.client.stream(
        "POST", "/v1/chat/completions", json=body, headers=headers
    ) as reply:
        assert reply.status_code == 200
        data = await reply.aread()
    # The reply's ``created`` is the second it started at.
    return CREATED.sub(b'"created":1', data)


@pytest.mark.parametrize("name", sorted(REPLIES))
@pytest.mark.parametrize(
    ("provider", "include_usage"), [("openai", False), ("openai", True), ("mistral", False)]
)
async def test_the_client_gets_the_bytes_of_the_full_path(
    make_server: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    provider: str,
    include_usage: bool,
) -> None:
    reply = REPLIES[name]
    upstream = ScriptedUpstream(script(reply))
    await upstream.start()
    taken: list[bool] = []
    steady = Chunks._steady

    def counted(self: Chunks, data: bytes) -> Any:
        raw = steady(self, data)
        taken.append(raw is not None)
        return raw

    try:
        monkeypatch.setattr(Chunks, "_steady", counted)
        fast = await streamed(make_server, provider, upstream, include_usage)
        fast_taken = taken[:]
        monkeypatch.setattr(Chunks, "allow_raw", None)
        taken.clear()
        full = await streamed(make_server, provider, upstream, include_usage)
    finally:
        await upstream.stop()
    assert taken == []  # no fast path at all the second time
    assert fast == full
    held = provider == "openai" and not include_usage  # the finish waits for the usage
    expected = [bool(fits) if fits is not None else not held for _, fits in reply]
    assert fast_taken == expected
    events = [json.loads(e[6:]) for e in fast.split(b"\n\n") if e.startswith(b"data: {")]
    assert {e["id"] for e in events} == {"chatcmpl-raw-chunks-1"}
    assert {e["model"] for e in events} == {f"{provider}/some-model"}
    assert all(list(e)[:5] == ["id", "object", "created", "model", "choices"] for e in events)
    assert fast.endswith(b"data: [DONE]\n\n")


# The reader's own decision, line by line, in the steady state (after a first delta).
def steady_reader() -> Chunks:
    reader = Chunks()
    reader.allow_raw()
    assert reader.feed(b"data: " + ROLE + b"\n\n")
    return reader


FITS = {
    "plain": line([text("hi")]),
    "nulls": line([text("hi", logprobs=None)], usage=None, error=None),
    "reasoning": line([{"index": 0, "delta": {"reasoning_content": "hm", "content": None}}]),
    "empty delta": line([{"index": 0, "delta": {}}]),
    "two choices": line([text("a", 0), text("b", 1)]),
    "spaced": json.dumps(json.loads(line([text("é")]))).encode(),
}
DOES_NOT_FIT = {
    "tool call": line([piece(0, "c", "f", "{}")]),
    "tool calls null": line([{"index": 0, "delta": {"content": "a", "tool_calls": None}}]),
    "finish": line([{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}]),
    "empty finish": line([{"index": 0, "delta": {"content": "a"}, "finish_reason": ""}]),
    "usage": line([text("a")], usage=USAGE),
    "error": line([text("a")], error={"message": "no"}),
    "unknown top field": line([text("a")], x_extra=1),
    "unknown choice field": line([text("a", native_finish_reason=None)]),
    "unknown delta field": line([{"index": 0, "delta": {"content": "a", "function_call": {}}}]),
    "a message": line([{"index": 0, "message": {"content": "a"}}]),
    "content not text": line([{"index": 0, "delta": {"content": [{"type": "text"}]}}]),
    "no choices": line([]),
    "choices null": b'{"id":"x","choices":null}',
    "a choice not an object": b'{"id":"x","choices":[1]}',
    "not an object": b"[1]",
    "not JSON": b'{"choices":[',
    "model not UTF-8": b'{"model":"\xff","choices":[{"index":0,"delta":{"content":"a"}}]}',
    "id out of range": b'{"id":1e999,"choices":[{"index":0,"delta":{"content":"a"}}]}',
    "a bare CR": b'{"choices":[{"index":0,\r"delta":{"content":"a"}}]}',
}


@pytest.mark.parametrize("data", list(FITS.values()), ids=list(FITS))
def test_a_plain_text_delta_goes_as_its_own_bytes(data: bytes) -> None:
    reader = steady_reader()
    [raw] = reader.feed(b"data: " + data + b"\n\n")
    assert type(raw) is msgspec.Raw
    assert msgspec.json.decode(raw) == json.loads(data)["choices"]
    content = [c["delta"] for c in json.loads(data)["choices"]]
    assert reader.relayed == sum(
        len(d.get("content") or d.get("reasoning_content") or "") for d in content
    )


@pytest.mark.parametrize("data", list(DOES_NOT_FIT.values()), ids=list(DOES_NOT_FIT))
def test_any_other_line_takes_the_full_path(data: bytes) -> None:
    fast, full = steady_reader(), FullPath()
    assert full.feed(b"data: " + ROLE + b"\n\n")
    got: list[Any] = []
    for reader in (fast, full):
        try:
            got.append(reader.feed(b"data: " + data + b"\n\n"))
        except StreamFailed as exc:
            got.append(str(exc))
    assert got[0] == got[1]
    assert not any(type(c) is msgspec.Raw for c in got[0])
    assert (fast.relayed, fast.usage) == (full.relayed, full.usage)


def test_lines_ended_by_crlf_take_the_fast_path_too() -> None:
    reader = steady_reader()
    [raw, chunk] = reader.feed(
        b"data: "
        + line([text("a")])
        + b"\r\n\r\ndata: "
        + b'{"choices":[{"index":0,\r"delta":{"content":"b"}}]}\r\n\r\n'
    )
    assert bytes(raw) == _encode([text("a")])
    assert chunk == {"choices": [{"index": 0, "delta": {"content": "b"}}]}  # the bare CR
    assert reader.relayed == 2


def test_no_fast_path_before_the_first_delta_or_while_a_finish_is_held() -> None:
    reader = Chunks(keep_usage=True, usage_follows=True)
    reader.allow_raw()
    [first] = reader.feed(b"data: " + line([text("a")]) + b"\n\n")
    assert first["choices"][0]["delta"] == {"content": "a", "role": "assistant"}
    assert reader.feed(b"data: " + line([finish("stop", 0)]) + b"\n\n") == []
    # Choice 1 goes on after choice 0's finish: held behind it, as the full path holds it.
    assert reader.feed(b"data: " + line([text("b", 1)]) + b"\n\n") == []
    [stop, more] = reader.feed(b"data: " + line([], usage=USAGE) + b"\n\n")
    assert stop["choices"][0]["finish_reason"] == "stop"
    assert more == {"choices": [text("b", 1)], "usage": USAGE}


# Generated streams: the two paths through the reader and /v1's output, event for event.
VALUES = st.none() | st.booleans() | st.integers(-2, 2) | st.text(max_size=4)
TOOL_PIECES = st.lists(
    st.fixed_dictionaries(
        {"index": st.integers(0, 1)},
        optional={
            "id": st.sampled_from(["c1", "c2"]),
            "function": st.fixed_dictionaries(
                {}, optional={"name": st.text(max_size=3), "arguments": st.text(max_size=3)}
            ),
        },
    ),
    max_size=2,
)
DELTAS = st.fixed_dictionaries(
    {},
    optional={
        "content": st.none() | st.text(max_size=6),
        "reasoning_content": st.none() | st.text(max_size=3),
        "role": st.sampled_from(["assistant", None]),
        "refusal": VALUES,
        "tool_calls": st.none() | TOOL_PIECES,
        "audio": VALUES,
    },
)
CHOICES = st.fixed_dictionaries(
    {"index": st.sampled_from([0, 0, 1])},
    optional={
        "delta": st.none() | DELTAS,
        "finish_reason": st.sampled_from([None, None, "stop", "tool_calls", ""]),
        "logprobs": st.none() | st.just({"content": [{"token": "a", "logprob": -0.5}]}),
        "native": VALUES,
    },
)
CHUNKS = st.fixed_dictionaries(
    {"choices": st.lists(CHOICES, max_size=2)},
    optional={
        "id": st.text(max_size=3),
        "model": st.text(max_size=3),
        "created": st.integers(0, 10**12),
        "usage": st.none() | st.just(USAGE) | st.just({}),
        "error": st.none() | st.just({"message": "broken"}),
        "system_fingerprint": st.none() | st.text(max_size=3),
        "x_other": VALUES,
    },
)
ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "compact": _encode,
    "spaced": lambda value: json.dumps(value).encode(),  # spaces, non-ASCII escaped
}
LINES = st.one_of(
    CHUNKS.map(lambda chunk: ("chunk", chunk)),
    st.just(("bytes", b"[DONE]")),
    st.binary(max_size=12).map(lambda data: ("bytes", data)),
)


class Sent:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            self.bodies.append(message["body"])


async def relayed(reader: Chunks, body: bytes, cut: int, include_usage: bool) -> Any:
    """What /v1 sends for ``body`` read in two pieces, as the relay does: the events, then
    the failure if any, and what the reader counted."""
    sent = Sent()
    call = ChatCall(model="m", messages=[], params={}, stream=True, include_usage=include_usage)
    request = Request(call, None, "openai/m")
    out = EventsOutput(sent, b"fixed-id", Timing(), request, reader, [])
    failure = None
    try:
        for block in (body[:cut], body[cut:]):
            items = reader.feed(block)
            if items:
                await out.write(items)
            if reader.finished:
                break
        else:
            items = reader.close()
            if items:
                await out.write(items)
        await out.end()
    except StreamFailed as exc:
        failure = str(exc)
    bodies = [CREATED.sub(b'"created":1', b) for b in sent.bodies]
    return bodies, failure, reader.relayed, reader.usage, reader.finished


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(
    lines=st.lists(LINES, max_size=10),
    encoding=st.sampled_from(sorted(ENCODERS)),
    cut=st.integers(0, 400),
    keep_usage=st.booleans(),
    usage_follows=st.booleans(),
)
async def test_generated_streams_give_the_same_events_on_both_paths(
    lines: list[tuple[str, Any]], encoding: str, cut: int, keep_usage: bool, usage_follows: bool
) -> None:
    encode = ENCODERS[encoding]
    data = [encode(value) if kind == "chunk" else value for kind, value in lines]
    body = b"".join(b"data: " + d + b"\n\n" for d in data)
    include_usage = not keep_usage
    fast = await relayed(Chunks(keep_usage, usage_follows), body, cut, include_usage)
    full = await relayed(FullPath(keep_usage, usage_follows), body, cut, include_usage)
    assert fast[1:] == full[1:]
    if encoding == "compact":
        assert fast[0] == full[0]  # byte for byte
    else:
        # The provider's spaces and escapes stay in its choices: the same JSON.
        def parsed(bodies: list[bytes]) -> list[Any]:
            return [
                json.loads(e[6:]) if e.startswith(b"data: {") else e
                for e in b"".join(bodies).split(b"\n\n")
            ]

        assert parsed(fast[0]) == parsed(full[0])
