"""TEMPORARY: the credential fields a user may store, until the provider declarations say.

This is the one place their names are written (chatbot-ui's profile names). The store,
/api/profile and ``chatwire keys`` know no name themselves: each takes the mapping this
function returns. When every provider is one declaration, this function is replaced by one
that collects the declarations' fields, and this module goes away. A field added here
needs no migration: stored values are rows (user, field, ciphertext).
"""

from __future__ import annotations

from chatwire.store.records import CredentialField

_KEY = CredentialField(secret=True)
_SETTING = CredentialField(secret=False)


def credential_fields() -> dict[str, CredentialField]:
    """Field name -> how it is treated, in chatbot-ui's order (the order they are listed in)."""
    return {
        "openai_api_key": _KEY,
        "openai_organization_id": _SETTING,
        "anthropic_api_key": _KEY,
        "google_gemini_api_key": _KEY,
        "mistral_api_key": _KEY,
        "groq_api_key": _KEY,
        "perplexity_api_key": _KEY,
        "openrouter_api_key": _KEY,
        "azure_openai_api_key": _KEY,
        "azure_openai_endpoint": CredentialField(secret=False, url=True),
        "azure_openai_35_turbo_id": _SETTING,
        "azure_openai_45_turbo_id": _SETTING,
        "azure_openai_45_vision_id": _SETTING,
        "azure_openai_embeddings_id": _SETTING,
    }
