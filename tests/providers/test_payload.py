"""The body chatwire sends to Mistral: only fields Mistral accepts, limits from the catalogue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatwire.api.schemas import decode_chat_request
from chatwire.catalogue import Catalogue
from chatwire.core.config import Settings
from chatwire.dialects.chatbot_ui import ChatbotUI
from chatwire.errors import RequestInvalid
from chatwire.gateway.resolve import ProfileView
from chatwire.gateway.steps import upstream_call
from chatwire.gateway.upstream import UpstreamCall
from chatwire.providers.registry import build_providers
from chatwire.store.records import Profile


def mistral_call(
    body: dict[str, Any], key: str = "k-123", catalogue: Catalogue | None = None
) -> UpstreamCall:
    """The call chatwire's pipeline makes to Mistral for a chatbot-ui request body."""
    provider = build_providers(
        Settings(mistral_base_url="http://up.test/v1/", mistral_api_key=None)
    )["mistral"]
    call = ChatbotUI().decode("/api/chat/mistral", json.dumps(body).encode()).call
    limits = (catalogue or Catalogue.load()).entry("mistral", call.model)
    fields = ProfileView({}, Profile(user_id=1, values={"mistral_api_key": key}))
    return upstream_call(provider, fields, call, None, limits, drop=False)


def build(body: dict[str, Any], key: str = "k-123") -> tuple[str, dict[str, str], dict[str, Any]]:
    call = mistral_call(body, key)
    return call.url, dict(call.headers), json.loads(call.body)


def chatbot_ui_body(**settings: Any) -> dict[str, Any]:
    return {
        "chatSettings": {
            "model": "mistral-small-latest",
            "prompt": "You are helpful.",
            "temperature": 0.5,
            "contextLength": 4096,
            "includeProfileContext": False,
            "includeWorkspaceInstructions": False,
            "embeddingsProvider": "openai",
            **settings,
        },
        "messages": [
            {"role": "system", "content": "Today is 11/25/2026."},
            {"role": "user", "content": "Say hello"},
        ],
        "customModelId": "",
        "somethingNew": {"ignored": True},
    }


def test_payload_has_exactly_the_fields_mistral_accepts() -> None:
    url, headers, payload = build(chatbot_ui_body())
    assert url == "http://up.test/v1/chat/completions"
    assert headers["Authorization"] == "Bearer k-123"
    assert payload == {
        "model": "mistral-small-latest",
        "messages": [
            {"role": "system", "content": "Today is 11/25/2026."},
            {"role": "user", "content": "Say hello"},
        ],
        "max_tokens": 2000,
        "temperature": 0.5,
        "stream": True,
    }


@pytest.mark.parametrize(("given", "sent"), [(1.7, 1.0), (-0.3, 0.0), (0.25, 0.25)])
def test_temperature_is_clamped_to_the_model_range(given: float, sent: float) -> None:
    _, _, payload = build(chatbot_ui_body(temperature=given))
    assert payload["temperature"] == sent


def test_model_outside_the_table_is_sent_without_max_tokens() -> None:
    _, _, payload = build(chatbot_ui_body(model="mistral-medium-3.5", temperature=1.2))
    assert "max_tokens" not in payload
    assert payload["temperature"] == 1.2
    assert payload["model"] == "mistral-medium-3.5"


def test_no_temperature_means_none_sent() -> None:
    body = chatbot_ui_body()
    del body["chatSettings"]["temperature"]
    _, _, payload = build(body)
    assert "temperature" not in payload


def test_image_and_text_parts_pass_in_mistral_shape() -> None:
    body = chatbot_ui_body()
    body["messages"][1]["content"] = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    _, _, payload = build(body)
    assert payload["messages"][1]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]


def test_unknown_message_fields_are_not_forwarded() -> None:
    body = chatbot_ui_body()
    body["messages"][1]["name"] = "bob"
    body["messages"][1]["id"] = "m1"
    _, _, payload = build(body)
    assert payload["messages"][1] == {"role": "user", "content": "Say hello"}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"not json", "not valid JSON"),
        (b"", "empty"),
        (b'{"messages": []}', "chatSettings"),
        (b'{"chatSettings": {"model": 3}, "messages": []}', "$.chatSettings.model"),
        (
            b'{"chatSettings": {"model": "m"}, "messages": [{"role": "robot", "content": "x"}]}',
            "$.messages[0].role",
        ),
        (b'{"chatSettings": {"model": "m"}, "messages": "hi"}', "$.messages"),
        (
            b'{"chatSettings": {"model": "m", "temperature": "hot"}, "messages": []}',
            "$.chatSettings.temperature",
        ),
        (
            b'{"chatSettings": {"model": "m"}, "messages": [{"role": "user", "content": [{"type": "audio"}]}]}',
            "$.messages[0].content",
        ),
        (b'\xff\xfe{"chatSettings"', "not valid JSON"),
    ],
)
def test_bad_bodies_get_a_message_naming_the_problem(body: bytes, named: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        decode_chat_request(body)
    assert named in caught.value.message
    assert caught.value.status == 400


def test_models_that_refuse_temperature_get_none(tmp_path: Path) -> None:
    models = tmp_path / "models.json"
    models.write_text(
        '{"mistral": {"magistral-think": {"accepts_temperature": false, "max_output": 900}}}'
    )
    call = mistral_call(chatbot_ui_body(model="magistral-think"), catalogue=Catalogue.load(models))
    payload = json.loads(call.body)
    assert "temperature" not in payload
    assert payload["max_tokens"] == 900
