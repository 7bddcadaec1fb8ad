"""Test doubles shipped with chatwire: a fake Mistral upstream on real TCP."""

from __future__ import annotations

from chatwire.testing.fake_mistral import FakeMistral

__all__ = ["FakeMistral"]
