"""The shipped model catalogue: chatbot-ui's limits table kept exactly, every entry sane.

CHATBOT_UI_TABLE is copied from chatbot-ui's ``lib/chat-setting-limits.ts`` at commit
81328b61d2a4ab597a7a057be70e785cf756d9f8 (June 2024): MIN_TEMPERATURE, MAX_TEMPERATURE,
MAX_TOKEN_OUTPUT_LENGTH, MAX_CONTEXT_LENGTH. A later edit of catalogue.json that changes
one of these numbers fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatwire.catalogue import Catalogue, CatalogueError, ModelEntry

Limits = tuple[float, float, int, int]  # min temp, max temp, max output, context

CHATBOT_UI_TABLE: dict[str, dict[str, Limits]] = {
    "anthropic": {
        "claude-2.1": (0.0, 1.0, 4096, 200000),
        "claude-instant-1.2": (0.0, 1.0, 4096, 100000),
        "claude-3-haiku-20240307": (0.0, 1.0, 4096, 200000),
        "claude-3-sonnet-20240229": (0.0, 1.0, 4096, 200000),
        "claude-3-opus-20240229": (0.0, 1.0, 4096, 200000),
        "claude-3-5-sonnet-20240620": (0.0, 1.0, 4096, 200000),
    },
    "google": {
        "gemini-1.5-flash": (0.0, 1.0, 8192, 1040384),
        "gemini-1.5-pro-latest": (0.0, 1.0, 8192, 1040384),
        "gemini-pro": (0.0, 1.0, 2048, 30720),
        "gemini-pro-vision": (0.0, 1.0, 4096, 12288),
    },
    "mistral": {
        "mistral-tiny": (0.0, 1.0, 2000, 8000),
        "mistral-small-latest": (0.0, 1.0, 2000, 32000),
        "mistral-medium-latest": (0.0, 1.0, 2000, 32000),
        "mistral-large-latest": (0.0, 1.0, 2000, 32000),
    },
    "groq": {
        "llama3-8b-8192": (0.0, 1.0, 8192, 8192),
        "llama3-70b-8192": (0.0, 1.0, 8192, 8192),
        "mixtral-8x7b-32768": (0.0, 1.0, 4096, 32768),
        "gemma-7b-it": (0.0, 2.0, 8192, 8192),
    },
    "openai": {
        "gpt-3.5-turbo": (0.0, 2.0, 4096, 4096),
        "gpt-4-turbo-preview": (0.0, 2.0, 4096, 128000),
        "gpt-4-vision-preview": (0.0, 2.0, 4096, 128000),
        "gpt-4": (0.0, 2.0, 4096, 8192),
        "gpt-4o": (0.0, 2.0, 4096, 128000),
    },
    "perplexity": {
        "pplx-7b-online": (0.0, 1.99, 4096, 4096),
        "pplx-70b-online": (0.0, 1.99, 4096, 4096),
        "pplx-7b-chat": (0.0, 1.0, 4096, 8192),
        "pplx-70b-chat": (0.0, 1.0, 4096, 4096),
        "mixtral-8x7b-instruct": (0.0, 1.0, 16384, 16384),
        "mistral-7b-instruct": (0.0, 1.0, 16384, 16384),
        "llama-2-70b-chat": (0.0, 2.0, 4096, 4096),
        "codellama-34b-instruct": (0.0, 1.0, 4096, 16384),
        "codellama-70b-instruct": (0.0, 1.0, 16384, 16384),
        "sonar-small-chat": (0.0, 1.0, 16384, 16384),
        "sonar-small-online": (0.0, 1.0, 12000, 12000),
        "sonar-medium-chat": (0.0, 1.0, 16384, 16384),
        "sonar-medium-online": (0.0, 1.0, 12000, 12000),
    },
}

# chatbot-ui's Azure route maps these names to deployments; they carry the OpenAI limits.
AZURE_MODELS = ("gpt-3.5-turbo", "gpt-4-turbo-preview", "gpt-4-vision-preview")

# chat-route.md: Mistral ids the provider has retired.
MISTRAL_RETIRED = ("mistral-tiny", "open-mistral-7b", "open-mixtral-8x7b", "open-mixtral-8x22b")

TABLE_ROWS = [
    (provider, model, limits)
    for provider, models in CHATBOT_UI_TABLE.items()
    for model, limits in models.items()
]


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def all_entries(catalogue: Catalogue) -> list[tuple[str, str, ModelEntry]]:
    return [
        (provider, model, entry)
        for provider, models in catalogue.models.items()
        for model, entry in models.items()
    ]


def test_shipped_catalogue_loads(catalogue: Catalogue) -> None:
    assert {"openai", "anthropic", "google", "mistral", "groq", "perplexity", "azure"} <= set(
        catalogue.models
    )
    assert len(all_entries(catalogue)) > len(TABLE_ROWS)


@pytest.mark.parametrize(
    ("provider", "model", "limits"), TABLE_ROWS, ids=[f"{p}/{m}" for p, m, _ in TABLE_ROWS]
)
def test_chatbot_ui_table_model_has_its_exact_limits(
    catalogue: Catalogue, provider: str, model: str, limits: Limits
) -> None:
    entry = catalogue.entry(provider, model)
    assert entry is not None, f"{provider}/{model} missing from the catalogue"
    assert (entry.min_temperature, entry.max_temperature, entry.max_output, entry.context) == (
        limits
    )


@pytest.mark.parametrize("model", AZURE_MODELS)
def test_azure_models_carry_the_openai_limits(catalogue: Catalogue, model: str) -> None:
    entry = catalogue.entry("azure", model)
    assert entry is not None
    expected = CHATBOT_UI_TABLE["openai"][model]
    assert (entry.min_temperature, entry.max_temperature, entry.max_output, entry.context) == (
        expected
    )
    # The name only picks a deployment, so it stays listed whatever OpenAI retired.
    assert not entry.retired


def test_every_mistral_model_keeps_chatbot_ui_max_output(catalogue: Catalogue) -> None:
    chat = [entry for entry in catalogue.models["mistral"].values() if entry.kind == "chat"]
    assert {entry.max_output for entry in chat} == {2000}


@pytest.mark.parametrize("model", MISTRAL_RETIRED)
def test_retired_mistral_models_are_marked(catalogue: Catalogue, model: str) -> None:
    entry = catalogue.entry("mistral", model)
    assert entry is not None
    assert entry.retired


def test_every_entry_is_sane(catalogue: Catalogue) -> None:
    problems: list[str] = []
    for provider, model, entry in all_entries(catalogue):
        name = f"{provider}/{model}"
        if not 0.0 <= entry.min_temperature <= entry.max_temperature:
            problems.append(f"{name}: temperature range")
        if entry.kind == "embedding":
            # An embedding model answers no text: it has an input limit and no max output.
            if entry.max_output is not None:
                problems.append(f"{name}: max_output of an embedding model")
        elif entry.max_output is None or entry.max_output <= 0:
            problems.append(f"{name}: max_output")
        if entry.context is None or entry.context <= 0:
            problems.append(f"{name}: context")
        if (
            entry.max_output is not None
            and entry.context is not None
            and entry.max_output > entry.context
        ):
            problems.append(f"{name}: max_output above context")
        if not entry.label.strip():
            problems.append(f"{name}: label")
    assert problems == []


def test_embedding_models_are_marked(catalogue: Catalogue) -> None:
    embedding = {
        (provider, model)
        for provider, model, entry in all_entries(catalogue)
        if entry.kind == "embedding"
    }
    assert {
        ("openai", "text-embedding-3-small"),
        ("azure", "text-embedding-3-small"),
        ("mistral", "mistral-embed"),
        ("google", "gemini-embedding-001"),
    } <= embedding
    assert ("openai", "gpt-4o") not in embedding


def test_every_provider_has_a_model_in_use(catalogue: Catalogue) -> None:
    for provider, models in catalogue.models.items():
        assert any(not entry.retired for entry in models.values()), provider


def test_operator_file_adds_a_model_and_overrides_one_field(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(
        json.dumps(
            {
                "mistral": {
                    "mistral-small-latest": {"max_output": 4000},
                    "mistral-medium-3.5": {
                        "max_temperature": 1.5,
                        "max_output": 8000,
                        "context": 128000,
                        "label": "Mistral Medium 3.5",
                    },
                },
                "openrouter": {"acme/model": {"max_output": 1024, "label": "Acme"}},
            }
        )
    )
    shipped = Catalogue.load()
    merged = Catalogue.load(path)

    small = merged.entry("mistral", "mistral-small-latest")
    before = shipped.entry("mistral", "mistral-small-latest")
    assert small is not None
    assert before is not None
    assert small.max_output == 4000
    assert (small.min_temperature, small.max_temperature, small.context, small.label) == (
        before.min_temperature,
        before.max_temperature,
        before.context,
        before.label,
    )

    added = merged.entry("mistral", "mistral-medium-3.5")
    assert added == ModelEntry(
        min_temperature=0.0,
        max_temperature=1.5,
        max_output=8000,
        context=128000,
        label="Mistral Medium 3.5",
    )
    assert merged.entry("openrouter", "acme/model") is not None
    # The rest of the shipped catalogue is untouched.
    assert merged.entry("openai", "gpt-4o") == shipped.entry("openai", "gpt-4o")


@pytest.mark.parametrize(
    "content",
    [
        '{"mistral": {"mistral-small-latest": {"max_output": 4000}',  # cut short
        "not json at all",
        '["mistral-small-latest"]',  # JSON, but not provider -> model -> fields
        '{"mistral": {"mistral-small-latest": 4000}}',
    ],
)
def test_malformed_operator_file_names_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken-models.json"
    path.write_text(content)
    with pytest.raises(CatalogueError) as caught:
        Catalogue.load(path)
    assert "broken-models.json" in str(caught.value)


def test_unreadable_operator_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing-models.json"
    with pytest.raises(CatalogueError) as caught:
        Catalogue.load(path)
    assert "missing-models.json" in str(caught.value)
