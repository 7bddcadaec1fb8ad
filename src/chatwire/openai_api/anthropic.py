"""/v1 to Anthropic's Messages API: the request translated, its events read back as chunks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatwire.openai_api.chunks import ChunkReader, delta, mid_stream
from chatwire.openai_api.translate import BASE_FIELDS, chat_request, check_fields, with_budget

if TYPE_CHECKING:
    from chatwire.catalogue import ModelEntry
    from chatwire.providers.base import Provider, Target, UpstreamCall

ANTHROPIC_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


class AnthropicChunks(ChunkReader):
    def convert(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        kind = item.get("type")
        if kind == "message_start":
            usage = (item.get("message") or {}).get("usage") or {}
            self._usage(prompt=usage.get("input_tokens"))
            return [delta("", role="assistant")]
        if kind == "content_block_delta":
            change = item.get("delta") or {}
            if change.get("type") == "text_delta":
                return [delta(change.get("text", ""))]
        elif kind == "message_delta":
            self._usage(completion=(item.get("usage") or {}).get("output_tokens"))
            reason = (item.get("delta") or {}).get("stop_reason")
            if reason:
                return [delta(finish=ANTHROPIC_FINISH.get(reason, "stop"))]
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            raise mid_stream(item.get("error"))
        return []

    def _usage(self, prompt: int | None = None, completion: int | None = None) -> None:
        usage = self.usage or {"prompt_tokens": 0, "completion_tokens": 0}
        if prompt is not None:
            usage["prompt_tokens"] = prompt
        if completion is not None:
            usage["completion_tokens"] = completion
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self.usage = usage


class AnthropicTranslation:
    fields = BASE_FIELDS

    def build(
        self,
        provider: Provider,
        target: Target,
        fields: dict[str, Any],
        limits: ModelEntry | None,
        drop: bool,
    ) -> UpstreamCall:
        check_fields(provider.label, fields, self.fields, drop)
        chat = chat_request(provider.label, target.model, fields)
        return provider.adapter.build(provider, with_budget(target, fields), chat, limits)

    def reader(self) -> ChunkReader:
        return AnthropicChunks()
