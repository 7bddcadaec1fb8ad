"""The sampling limits every wire format applies the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatwire.api.schemas import ChatRequest
    from chatwire.catalogue import ModelEntry
    from chatwire.providers.base import Quirks, Target


def temperature(quirks: Quirks, request: ChatRequest, limits: ModelEntry | None) -> float | None:
    """chatSettings.temperature, clamped to the model's range when the catalogue has it."""
    return clamp_temperature(quirks, request.chatSettings.temperature, limits)


def clamp_temperature(
    quirks: Quirks, value: float | None, limits: ModelEntry | None
) -> float | None:
    """A temperature as the provider gets it: clamped to the model's range, or none at all
    for a provider or model that takes none."""
    if value is None or not quirks.send_temperature:
        return None
    if limits is not None:
        if not limits.accepts_temperature:
            return None
        return min(max(value, limits.min_temperature), limits.max_temperature)
    return value


def max_tokens(quirks: Quirks, target: Target, limits: ModelEntry | None) -> int | None:
    """The reply's token budget: the custom record's, else the catalogue's max output."""
    if target.max_tokens is not None:
        return target.max_tokens
    if quirks.send_max_tokens and limits is not None:
        return limits.max_output
    return None
