"""Gemini's embeddings: ``models/{model}:batchEmbedContents``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from chatwire.errors import RequestInvalid
from chatwire.families.base import check_fields
from chatwire.gateway.upstream import UpstreamCall

if TYPE_CHECKING:
    from chatwire.gateway.embedding_call import EmbeddingCall
    from chatwire.gateway.upstream import Target
    from chatwire.providers.declaration import Provider

_encode = msgspec.json.Encoder().encode


class GeminiEmbeddings:
    """Embeddings: ``models/{model}:batchEmbedContents``, one request per input text (its
    ``content``, with ``outputDimensionality`` for ``dimensions``); the answer's
    ``embeddings[].values`` in input order. Gemini's API reports no token counts for
    embeddings, so the answer carries no usage. Token arrays and OpenAI's other parameters
    (``user``) have no equivalent: a 400 naming them (``CHATWIRE_DROP_PARAMS`` drops them)."""

    __slots__ = ()

    def build(
        self, provider: Provider, target: Target, call: EmbeddingCall, drop: bool
    ) -> UpstreamCall:
        label = provider.label
        if call.texts is None:
            raise RequestInvalid(
                f"{label} embeds text only: send 'input' as a string or a list of strings, "
                "not token arrays."
            )
        check_fields(label, call.params, (), drop)
        model = f"models/{target.model}"
        requests = []
        for text in call.texts:
            request: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]}}
            if call.dimensions is not None:
                request["outputDimensionality"] = call.dimensions
            requests.append(request)
        return UpstreamCall(
            url=f"{target.base_url}/models/{quote(target.model, safe='')}:batchEmbedContents",
            headers={**provider.auth_headers(target.key), "Content-Type": "application/json"},
            body=_encode({"requests": requests}),
        )

    def parse(self, answer: Any) -> tuple[list[Any], dict[str, int] | None]:
        return [embedding["values"] for embedding in answer["embeddings"]], None


GEMINI_EMBEDDINGS = GeminiEmbeddings()
