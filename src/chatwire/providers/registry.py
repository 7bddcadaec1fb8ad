"""The providers this process serves: every declaration registered, bound to the settings.

Declarations come from the ``chatwire.providers`` entry point group, as plugins of simonw/llm
or pytest do: each entry point names a ``Provider`` or an iterable of them. chatwire's own
are registered there too (``providers.builtin:PROVIDERS`` in ``pyproject.toml``). Binding
applies the operator's settings: ``CHATWIRE_<NAME>_BASE_URL`` and ``CHATWIRE_<NAME>_<OPTION>``.
Everything the rest of chatwire knows of a provider's fields (the profile's names, the
operator's overrides, ``GET /api/keys``) is derived here from the declarations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from functools import cache
from importlib.metadata import entry_points
from types import MappingProxyType

from chatwire.core.config import Settings
from chatwire.providers.declaration import Credential, Provider
from chatwire.store.records import CredentialField

log = logging.getLogger("chatwire.providers")
GROUP = "chatwire.providers"


class RegistryError(RuntimeError):
    pass


@cache
def declarations() -> tuple[Provider, ...]:
    """Every registered declaration, chatwire's own first, each name once."""
    found: dict[str, Provider] = {}
    points = sorted(
        entry_points(group=GROUP), key=lambda p: (p.value.split(":")[0] != _OWN, p.name)
    )
    if not any(p.value.split(":")[0] == _OWN for p in points):
        # Running from a source tree that was never installed: its entry points are unknown.
        from chatwire.providers.builtin import PROVIDERS

        _add(found, PROVIDERS, "chatwire")
    for point in points:
        try:
            loaded = point.load()
        except Exception as exc:  # a broken plugin names itself, it does not stop chatwire
            raise RegistryError(
                f"provider entry point {point.name!r} failed to load: {exc}"
            ) from exc
        _add(found, [loaded] if isinstance(loaded, Provider) else loaded, point.name)
    return tuple(found.values())


_OWN = "chatwire.providers.builtin"


def _add(found: dict[str, Provider], loaded: Iterable[object], source: str) -> None:
    for provider in loaded:
        if not isinstance(provider, Provider):
            raise RegistryError(f"entry point {source!r} gave {provider!r}, not a Provider")
        if provider.name in found:
            raise RegistryError(f"provider {provider.name!r} is declared twice ({source})")
        found[provider.name] = provider


def setting_variables() -> list[str]:
    """Every environment variable a provider's settings are read from."""
    found: list[str] = []
    for provider in declarations():
        found.append(provider.base_url_setting)
        found += [provider.option_setting(option) for option in provider.options]
        found += [c.env for c in provider.credentials if c.env is not None]
    return list(dict.fromkeys(found))


def build_providers(settings: Settings) -> dict[str, Provider]:
    """Every provider, with the operator's base URL and options applied."""
    providers = {}
    for declared in declarations():
        base_url = settings.lookup(declared.base_url_setting) or declared.base_url
        options = {
            option: settings.lookup(declared.option_setting(option)) or default
            for option, default in declared.options.items()
        }
        providers[declared.name] = replace(
            declared, base_url=base_url.rstrip("/"), options=MappingProxyType(options)
        )
    return providers


def _credentials(providers: Iterable[Provider] | None) -> dict[str, Credential]:
    found: dict[str, Credential] = {}
    for provider in declarations() if providers is None else providers:
        for credential in provider.credentials:
            found.setdefault(credential.field, credential)
    return found


def credential_fields(providers: Iterable[Provider] | None = None) -> dict[str, CredentialField]:
    """Every credential field of every provider, as the store and /api/profile take them."""
    return {
        name: CredentialField(secret=credential.secret, url=credential.url)
        for name, credential in _credentials(providers).items()
    }


def key_fields(providers: Iterable[Provider] | None = None) -> dict[str, str]:
    """Provider name -> the field of its key, for ``chatwire keys set USER PROVIDER``."""
    found = {}
    for provider in declarations() if providers is None else providers:
        if provider.key is not None:
            found[provider.name] = provider.key
    return found


def operator_values(
    settings: Settings, providers: Iterable[Provider] | None = None
) -> dict[str, str]:
    """Credential field -> the operator's value from the environment, for every user."""
    values = {}
    for name, credential in _credentials(providers).items():
        if credential.env is not None:
            value = settings.lookup(credential.env)
            if value:
                values[name] = value
    return values


def env_key_map(settings: Settings, providers: Iterable[Provider]) -> dict[str, bool]:
    """chatbot-ui's GET /api/keys: whether each value comes from the operator's environment,
    a provider's key under the provider's name, any other value under its variable's name
    in lower case (``azure_openai_endpoint``, ``azure_gpt_35_turbo_name``)."""
    found: dict[str, bool] = {}
    for provider in providers:
        for credential in provider.credentials:
            if credential.env is None:
                continue
            name = provider.name if credential.field == provider.key else credential.env.lower()
            found.setdefault(name, bool(settings.lookup(credential.env)))
    return found
