"""/v1 to Gemini's streamGenerateContent: the request translated, its chunks read back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatwire.openai_api.chunks import ChunkReader, delta, mid_stream
from chatwire.openai_api.translate import BASE_FIELDS, chat_request, check_fields, with_budget

if TYPE_CHECKING:
    from chatwire.catalogue import ModelEntry
    from chatwire.providers.base import Provider, Target, UpstreamCall

GEMINI_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}


class GeminiChunks(ChunkReader):
    def convert(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        if item.get("error") is not None:
            raise mid_stream(item["error"])
        meta = item.get("usageMetadata")
        if meta:
            prompt = meta.get("promptTokenCount", 0)
            completion = meta.get("candidatesTokenCount", 0)
            self.usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": meta.get("totalTokenCount", prompt + completion),
            }
        candidates = item.get("candidates") or []
        if not candidates:
            return []
        candidate = candidates[0]
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(p.get("text", "") for p in parts if isinstance(p, dict))
        reason = candidate.get("finishReason")
        out = [delta(text)] if text else []
        if reason:
            self.finished = True
            out.append(delta(finish=GEMINI_FINISH.get(reason, "stop")))
        return out


class GeminiTranslation:
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
        return GeminiChunks()
