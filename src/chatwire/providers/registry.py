"""The providers this process serves, built from settings at startup.

Built-in providers are declared here the same way an outside one would be: a
``Provider`` naming its key field, environment variable, base URL and wire adapter.
"""

from __future__ import annotations

from chatwire.core.config import Settings
from chatwire.providers.base import Provider
from chatwire.providers.openai_compat import OpenAICompatible


def build_providers(settings: Settings) -> dict[str, Provider]:
    openai_wire = OpenAICompatible()
    providers = [
        Provider(
            name="mistral",
            label="Mistral",
            key_field="mistral_api_key",
            env_var="MISTRAL_API_KEY",
            base_url=settings.mistral_base_url.rstrip("/"),
            adapter=openai_wire,
            env_key=settings.env_value("mistral_api_key"),
        ),
    ]
    return {p.name: p for p in providers}


# chatbot-ui's GET /api/keys names, each with the settings field that overrides it.
ENV_KEY_MAP: dict[str, str] = {
    "openai": "openai_api_key",
    "anthropic": "anthropic_api_key",
    "google": "google_gemini_api_key",
    "mistral": "mistral_api_key",
    "groq": "groq_api_key",
    "perplexity": "perplexity_api_key",
    "openrouter": "openrouter_api_key",
    "azure": "azure_openai_api_key",
    "openai_organization_id": "openai_organization_id",
    "azure_openai_endpoint": "azure_openai_endpoint",
    "azure_gpt_35_turbo_name": "azure_gpt_35_turbo_name",
    "azure_gpt_45_vision_name": "azure_gpt_45_vision_name",
    "azure_gpt_45_turbo_name": "azure_gpt_45_turbo_name",
    "azure_embeddings_name": "azure_embeddings_name",
}
