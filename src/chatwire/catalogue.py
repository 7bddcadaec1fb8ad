"""The model catalogue: per-model limits, shipped as data and overridable by the operator.

The package carries ``catalogue.json`` (chatbot-ui's model-limits table plus each
provider's current models). ``CHATWIRE_MODELS_FILE`` names a JSON file of the same shape
whose entries are merged over it, field by field, so an operator can add a model or
change a limit without touching code. An entry's ``kind`` says whether the model chats or
embeds; an embedding model has a context (its longest input) and no max output.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import msgspec

# What a model does: "chat" models answer chats; "embedding" models only embed
# (POST /v1/embeddings), and a chat asking one is refused.
Kind = Literal["chat", "embedding"]


class ModelEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    min_temperature: float = 0.0
    max_temperature: float = 1.0
    max_output: int | None = None
    context: int | None = None
    label: str = ""
    retired: bool = False
    image_input: bool = False
    # Some reasoning models refuse any temperature: none is sent to them.
    accepts_temperature: bool = True
    kind: Kind = "chat"


class CatalogueError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Catalogue:
    models: dict[str, dict[str, ModelEntry]]

    @classmethod
    def load(cls, operator_file: Path | None = None) -> Catalogue:
        raw = _read_json(resources.files("chatwire").joinpath("catalogue.json").read_bytes(), "")
        if operator_file is not None:
            try:
                data = operator_file.read_bytes()
            except OSError as exc:
                raise CatalogueError(f"Cannot read models file {operator_file}: {exc}") from exc
            _merge(raw, _read_json(data, str(operator_file)))
        try:
            models = msgspec.convert(raw, dict[str, dict[str, ModelEntry]])
        except msgspec.ValidationError as exc:
            source = f"models file {operator_file}" if operator_file else "model catalogue"
            raise CatalogueError(f"Invalid {source}: {exc}") from exc
        return cls(models)

    def entry(self, provider: str, model: str) -> ModelEntry | None:
        """The model's entry (its limits, label and traits), or None when it is not listed."""
        return self.models.get(provider, {}).get(model)


def _read_json(data: bytes, name: str) -> dict[str, dict[str, dict[str, Any]]]:
    try:
        parsed = msgspec.json.decode(data, type=dict[str, dict[str, dict[str, Any]]])
    except msgspec.DecodeError as exc:
        raise CatalogueError(f"Invalid models file {name}: {exc}") from exc
    return parsed


def _merge(
    base: dict[str, dict[str, dict[str, Any]]], extra: dict[str, dict[str, dict[str, Any]]]
) -> None:
    for provider, models in extra.items():
        target = base.setdefault(provider, {})
        for model, fields in models.items():
            target.setdefault(model, {}).update(fields)
