"""The OpenAPI description, with the chat routes, /v1/embeddings, /v1/responses and
/v1/messages in it.

The chat routes and /v1/embeddings are bare ASGI endpoints reached before FastAPI (see
``app.Chatwire``), so FastAPI does not know them; they are described here from the same
msgspec structs that decode their bodies, so clients, docs and the fuzzer see every route
chatwire serves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from chatwire.api.schemas import ChatRequest
from chatwire.dialects.anthropic_messages import CountTokensRequest, MessagesRequest
from chatwire.dialects.openai_chat import ChatCompletionRequest
from chatwire.dialects.openai_embeddings import EmbeddingRequest
from chatwire.dialects.openai_responses import ResponsesRequest
from chatwire.errors import UnknownURL

_REF = "#/components/schemas/{name}"
_ERROR = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
}
_OPENAI_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
    "required": ["error"],
}
_ANTHROPIC_ERROR = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["error"]},
        "error": {
            "type": "object",
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
    "required": ["type", "error"],
}
_METHODS = frozenset(("get", "put", "post", "delete", "options", "head", "patch", "trace"))
_FAILURES = {
    "400": "Invalid body, or no key stored for the provider",
    "401": "No or bad bearer token, or the provider refused the key",
    "404": "Unknown provider or model",
    "405": "Not POST",
    "408": "The body did not arrive within CHATWIRE_BODY_TIMEOUT",
    "413": "Body larger than CHATWIRE_MAX_BODY_BYTES",
    "429": (
        "Too many chats of the caller's at once, too many failed tokens from the client's "
        "address, or the provider's rate limit"
    ),
    "502": "The provider could not be reached or sent a broken reply",
    "503": (
        "This process holds CHATWIRE_MAX_STREAMS chats already, is shutting down, or the "
        "database is not answering"
    ),
    "504": "The provider did not answer in time",
}


def install(app: FastAPI, providers: Iterable[str]) -> None:
    """Make ``app.openapi()`` describe the chat routes too."""
    app.openapi = _builder(app, sorted(providers))  # type: ignore[method-assign]


def unknown_url(app: FastAPI, method: str, path: str) -> UnknownURL:
    """The 404 for a path no route serves, naming the routes under its first segment (all
    of them when none is): read from the description, so the chat routes are in it."""
    routes = [
        (route, f"{verb.upper()} {route}")
        for route, operations in app.openapi()["paths"].items()
        for verb in operations
        if verb in _METHODS
    ]
    prefix = "/" + path.lstrip("/").split("/", 1)[0]
    near = [shown for route, shown in routes if route.startswith(prefix + "/")]
    listed = (
        f"under {prefix} are: {', '.join(near)}"
        if near
        else "are: " + ", ".join(shown for _, shown in routes)
    )
    return UnknownURL(f"Unknown URL: {method} {path[:200]}. The routes {listed}.")


def _builder(app: FastAPI, providers: list[str]) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            _add_chat_routes(schema, providers)
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def _add_chat_routes(schema: dict[str, Any], providers: list[str]) -> None:
    (chat, completion, embedding, messages, count, responses), components = (
        msgspec.json.schema_components(
            [
                ChatRequest,
                ChatCompletionRequest,
                EmbeddingRequest,
                MessagesRequest,
                CountTokensRequest,
                ResponsesRequest,
            ],
            ref_template=_REF,
        )
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    schemes = schema["components"].setdefault("securitySchemes", {})
    schemes["bearer"] = {"type": "http", "scheme": "bearer"}
    schemes["apiKey"] = {"type": "apiKey", "in": "header", "name": "x-api-key"}
    either: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
    schema["paths"]["/api/chat/{provider}"] = {
        "post": {
            "summary": "Chat (chatbot-ui's route): the reply streamed as plain text",
            "operationId": "chat",
            "tags": ["chat"],
            "security": bearer,
            "parameters": [
                {
                    "name": "provider",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": providers},
                }
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": chat}}},
            "responses": {
                "200": {
                    "description": "The reply's text, flushed piece by piece",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(_ERROR),
            },
        }
    }
    schema["paths"]["/v1/chat/completions"] = {
        "post": {
            "summary": "OpenAI-compatible chat completion, streamed (SSE) or not",
            "operationId": "chat_completions",
            "tags": ["openai"],
            "security": bearer,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": completion}},
            },
            "responses": {
                "200": {
                    "description": "A chat.completion, or chat.completion.chunk events",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **_errors(_OPENAI_ERROR),
            },
        }
    }
    schema["paths"]["/v1/embeddings"] = {
        "post": {
            "summary": "OpenAI-compatible embeddings (OpenAI, Azure, Mistral, Gemini, Ollama, "
            "custom models)",
            "operationId": "embeddings",
            "tags": ["openai"],
            "security": bearer,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": embedding}},
            },
            "responses": {
                "200": {
                    "description": "A list of embeddings, as floats or base64",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_errors(_OPENAI_ERROR),
            },
        }
    }
    schema["paths"]["/v1/responses"] = {
        "post": {
            "summary": "OpenAI's Responses API, streamed (typed SSE events) or not",
            "operationId": "responses",
            "tags": ["openai"],
            "security": bearer,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": responses}},
            },
            "responses": {
                "200": {
                    "description": "A response object, or its events",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **_errors(_OPENAI_ERROR),
            },
        }
    }
    schema["paths"]["/v1/messages"] = {
        "post": {
            "summary": "Anthropic's Messages API: passed through to Anthropic, else translated",
            "operationId": "messages",
            "tags": ["anthropic"],
            "security": either,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": messages}},
            },
            "responses": {
                "200": {
                    "description": "A message, or its server-sent events",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **_errors(_ANTHROPIC_ERROR),
            },
        }
    }
    schema["paths"]["/v1/messages/count_tokens"] = {
        "post": {
            "summary": "Count a message's input tokens (Anthropic's count, else an estimate)",
            "operationId": "count_tokens",
            "tags": ["anthropic"],
            "security": either,
            "requestBody": {"required": True, "content": {"application/json": {"schema": count}}},
            "responses": {
                "200": {
                    "description": '{"input_tokens": N}; chatwire-estimate: true when estimated',
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_errors(_ANTHROPIC_ERROR),
            },
        }
    }


def _errors(body: dict[str, Any]) -> dict[str, Any]:
    return {
        status: {"description": text, "content": {"application/json": {"schema": body}}}
        for status, text in _FAILURES.items()
    }
