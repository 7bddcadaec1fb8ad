"""Settings: what a ``chatwire serve --workers N`` process hands its workers is exactly what
it resolved, secrets included, whatever the workers' own environment says."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from chatwire.core.config import Settings


def test_workers_get_every_value_of_the_parent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("_CHATWIRE_WORKER_SETTINGS", "")  # restored after the test
    given = Settings(
        data_dir=tmp_path / "data",
        database_url="postgresql+asyncpg://chatwire@db.internal/chatwire",
        secret_key=SecretStr("k1,k2"),
        metrics_token=SecretStr("scrape-me"),
        mistral_api_key=SecretStr("sk-operator"),
        mistral_base_url="http://127.0.0.1:9/v1",
        models_file=tmp_path / "models.json",
        max_streams=7,
        drop_params=True,
        workers=3,
    )
    given.pass_to_workers()
    # A worker's own environment and ./.env are not read: these would otherwise win.
    monkeypatch.setenv("CHATWIRE_MISTRAL_BASE_URL", "http://elsewhere/v1")
    monkeypatch.setenv("MISTRAL_API_KEY", "sk-from-the-workers-environment")
    passed = Settings.from_parent()
    assert passed == given
    assert passed.lookup("MISTRAL_API_KEY") == "sk-operator"
    assert passed.lookup("CHATWIRE_MISTRAL_BASE_URL") == given.lookup("CHATWIRE_MISTRAL_BASE_URL")
    assert passed.data_dir == tmp_path / "data"


def test_a_worker_without_a_parent_says_how_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_CHATWIRE_WORKER_SETTINGS", raising=False)
    with pytest.raises(RuntimeError, match="chatwire serve"):
        Settings.from_parent()


@pytest.mark.parametrize(
    "given",
    [
        '{"claude-sonnet-4-5": "mistral/mistral-large-latest", "fast": "google/gemini-2.5-flash"}',
        "claude-sonnet-4-5=mistral/mistral-large-latest, fast = google/gemini-2.5-flash,",
    ],
)
def test_model_aliases_as_json_or_pairs(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv("CHATWIRE_MODEL_ALIASES", given)
    assert Settings(_env_file=None).alias_map == {
        "claude-sonnet-4-5": "mistral/mistral-large-latest",
        "fast": "google/gemini-2.5-flash",
    }


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ('{"a": 1}', "must map names to model names"),
        ("[1]", "is not name=provider/model"),
        ("{not json", "not valid JSON"),
        ("claude-sonnet-4-5", "is not name=provider/model"),
        ("=mistral/x", "must both be named"),
    ],
)
def test_unreadable_model_aliases_are_refused_at_start(given: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        Settings(_env_file=None, model_aliases=given)
