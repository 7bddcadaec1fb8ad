"""The canonical reply as Anthropic's content blocks: the events of a streamed message, from
which a whole message is gathered too, and Anthropic's usage from the canonical one."""

from __future__ import annotations

from typing import Any

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


class Blocks:
    """The canonical deltas as Anthropic's content block events, in order: a block opens
    with its first piece and closes when a piece of another kind comes (a tool call is one
    block of its own), so thinking, text and tool use follow each other as they came."""

    __slots__ = ("_call", "_count", "_kind", "finish")

    def __init__(self) -> None:
        self._count = 0  # blocks opened so far
        self._kind: str | None = None  # the open block's type
        self._call: Any = None  # the open tool_use block's canonical call index
        self.finish: str | None = None

    def events(self, chunks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for chunk in chunks:
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                change = choice.get("delta")
                if isinstance(change, dict):
                    self._pieces(change, out)
                if choice.get("finish_reason"):
                    self.finish = choice["finish_reason"]
        return out

    def _pieces(self, change: dict[str, Any], out: list[tuple[str, dict[str, Any]]]) -> None:
        thinking = change.get("reasoning_content")
        if isinstance(thinking, str) and thinking:
            self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            out.append(self._delta({"type": "thinking_delta", "thinking": thinking}))
        signature = change.get("reasoning_signature")
        if isinstance(signature, str) and signature:
            self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            out.append(self._delta({"type": "signature_delta", "signature": signature}))
        text = change.get("content")
        if isinstance(text, str) and text:
            self._open("text", {"type": "text", "text": ""}, out)
            out.append(self._delta({"type": "text_delta", "text": text}))
        for piece in change.get("tool_calls") or ():
            if isinstance(piece, dict):
                self._tool(piece, out)

    def _tool(self, piece: dict[str, Any], out: list[tuple[str, dict[str, Any]]]) -> None:
        given = piece.get("function")
        function: dict[str, Any] = given if isinstance(given, dict) else {}
        arguments = function.get("arguments")
        index = piece.get("index")
        if not (self._kind == "tool_use" and self._call == index and not piece.get("id")):
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": piece.get("id") or f"toolu_{self._count}",
                "name": function.get("name") or "",
                "input": {},
            }
            self._close(out)
            self._open("tool_use", block, out)
            self._call = index
        if isinstance(arguments, str) and arguments:
            out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))

    def _open(
        self, kind: str, block: dict[str, Any], out: list[tuple[str, dict[str, Any]]]
    ) -> None:
        if self._kind == kind and kind != "tool_use":
            return
        self._close(out)
        self._kind = kind
        out.append(("content_block_start", {"index": self._count, "content_block": block}))
        self._count += 1

    def _delta(self, change: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return ("content_block_delta", {"index": self._count - 1, "delta": change})

    def _close(self, out: list[tuple[str, dict[str, Any]]]) -> None:
        if self._kind is not None:
            out.append(("content_block_stop", {"index": self._count - 1}))
            self._kind = None
            self._call = None

    def close(self) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        self._close(out)
        return out

    def stop_reason(self) -> str:
        return STOP_REASONS.get(self.finish or "stop", "end_turn")


def message_usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    """Anthropic's usage from the canonical one: its input tokens exclude those read from
    and written to the cache, which it counts apart."""
    if not usage:
        return {"input_tokens": 0, "output_tokens": 0}
    details = usage.get("prompt_tokens_details") or {}
    read = details.get("cached_tokens")
    written = details.get("cache_write_tokens")
    out: dict[str, Any] = {
        "input_tokens": max(0, (usage.get("prompt_tokens") or 0) - (read or 0) - (written or 0)),
        "output_tokens": usage.get("completion_tokens") or 0,
    }
    if written is not None:
        out["cache_creation_input_tokens"] = written
    if read is not None:
        out["cache_read_input_tokens"] = read
    return out
