"""One chat through each front door, and the reply's text read back in that door's shape."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import Running

PROMPT = "Hello there"
# (door, streamed): chatbot-ui's route always streams.
DOORS = [
    ("chatbot-ui", True),
    ("chat", False),
    ("chat", True),
    ("responses", False),
    ("responses", True),
    ("messages", False),
    ("messages", True),
]


async def ask(server: Running, door: str, model: str, stream: bool) -> httpx.Response:
    client, auth = server.client, server.auth
    user = [{"role": "user", "content": PROMPT}]
    if door == "chatbot-ui":
        body: dict[str, Any] = {"chatSettings": {"model": model}, "messages": user}
        return await client.post("/api/chat/route", json=body, headers=auth)
    if door == "chat":
        body = {"model": model, "messages": user, "stream": stream}
        return await client.post("/v1/chat/completions", json=body, headers=auth)
    if door == "responses":
        body = {"model": model, "input": PROMPT, "stream": stream}
        return await client.post("/v1/responses", json=body, headers=auth)
    body = {"model": model, "max_tokens": 200, "messages": user, "stream": stream}
    heads = {"x-api-key": server.token, "anthropic-version": "2023-06-01"}
    return await client.post("/v1/messages", json=body, headers=heads)


def text_of(door: str, stream: bool, resp: httpx.Response) -> str:
    """The reply's text, read as that door's clients read it."""
    if door == "chatbot-ui":
        return resp.text
    if not stream:
        body = resp.json()
        if door == "chat":
            return str(body["choices"][0]["message"]["content"])
        if door == "responses":
            return "".join(
                part["text"]
                for item in body["output"]
                if item["type"] == "message"
                for part in item["content"]
                if part["type"] == "output_text"
            )
        return "".join(block["text"] for block in body["content"] if block["type"] == "text")
    pieces = []
    for line in resp.text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        data = json.loads(line[6:])
        if door == "chat":
            for choice in data.get("choices", []):
                pieces.append(choice["delta"].get("content") or "")
        elif door == "responses":
            if data.get("type") == "response.output_text.delta":
                pieces.append(data["delta"])
        elif data.get("type") == "content_block_delta" and data["delta"]["type"] == "text_delta":
            pieces.append(data["delta"]["text"])
    return "".join(pieces)


def error_message(door: str, resp: httpx.Response) -> str:
    """The error's message, in the door's shape (which it also checks)."""
    body = resp.json()
    if door == "chatbot-ui":
        return str(body["message"])
    if door == "messages":
        assert body["type"] == "error"
        return str(body["error"]["message"])
    return str(body["error"]["message"])
