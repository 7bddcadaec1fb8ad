"""/v1 to Ollama's /api/chat: the request translated, its NDJSON lines read back as chunks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatwire.openai_api.chunks import ChunkReader, delta, mid_stream
from chatwire.openai_api.translate import BASE_FIELDS, chat_request, check_fields, with_budget

if TYPE_CHECKING:
    from chatwire.catalogue import ModelEntry
    from chatwire.providers.base import Provider, Target, UpstreamCall


class OllamaChunks(ChunkReader):
    prefix = b""

    def convert(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if item.get("error") is not None:
            raise mid_stream(item["error"])
        text = (item.get("message") or {}).get("content") or ""
        out = [delta(text)] if text else []
        if item.get("done"):
            self.finished = True
            prompt, completion = item.get("prompt_eval_count", 0), item.get("eval_count", 0)
            self.usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            reason = "length" if item.get("done_reason") == "length" else "stop"
            out.append(delta(finish=reason))
        return out


class OllamaTranslation:
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
        return OllamaChunks()
