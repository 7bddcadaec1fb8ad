"""The providers this process serves, built from settings at startup.

Built-in providers are declared here the same way an outside one would be: a ``Provider``
naming its label, key field, base URL, how it authenticates, its wire adapter and quirks.
Adding an OpenAI-compatible provider is one more entry in ``build_providers`` (plus its
settings field for the base URL and, if it has one, its key field and env variable).
"""

from __future__ import annotations

from collections.abc import Mapping

from chatwire.core.config import Settings
from chatwire.providers import resolve
from chatwire.providers.anthropic import AnthropicMessages
from chatwire.providers.base import Provider, Quirks
from chatwire.providers.gemini import GeminiGenerateContent
from chatwire.providers.ollama import OllamaChat
from chatwire.providers.openai_compat import OpenAICompatible

# chatbot-ui's Azure model names and the profile field holding each one's deployment id.
AZURE_DEPLOYMENTS = {
    "gpt-3.5-turbo": "azure_openai_35_turbo_id",
    "gpt-4-turbo-preview": "azure_openai_45_turbo_id",
    "gpt-4-vision-preview": "azure_openai_45_vision_id",
}


def build_providers(settings: Settings) -> dict[str, Provider]:
    openai_wire = OpenAICompatible()

    def openai_compatible(
        name: str,
        label: str,
        base_url: str,
        quirks: Quirks | None = None,
        header_fields: Mapping[str, str] | None = None,
    ) -> Provider:
        return Provider(
            name=name,
            label=label,
            base_url=base_url.rstrip("/"),
            adapter=openai_wire,
            resolve=resolve.by_key,
            key_field=f"{name}_api_key",
            header_fields=header_fields or {},
            quirks=quirks or Quirks(),
        )

    providers = [
        openai_compatible("mistral", "Mistral", settings.mistral_base_url),
        openai_compatible(
            "openai",
            "OpenAI",
            settings.openai_base_url,
            header_fields={"OpenAI-Organization": "openai_organization_id"},
            # chatbot-ui sent max_tokens to OpenAI only for the retired vision preview.
            quirks=Quirks(send_max_tokens=False),
        ),
        Provider(
            name="azure",
            label="Azure OpenAI",
            base_url="",
            adapter=openai_wire,
            resolve=resolve.azure,
            key_field="azure_openai_api_key",
            auth="api-key",
            quirks=Quirks(
                send_max_tokens=False,
                deployments=AZURE_DEPLOYMENTS,
                api_version=settings.azure_api_version,
            ),
        ),
        openai_compatible("groq", "Groq", settings.groq_base_url),
        # chatbot-ui sent Perplexity neither temperature nor max_tokens.
        openai_compatible(
            "perplexity",
            "Perplexity",
            settings.perplexity_base_url,
            quirks=Quirks(send_temperature=False, send_max_tokens=False),
        ),
        openai_compatible(
            "openrouter",
            "OpenRouter",
            settings.openrouter_base_url,
            quirks=Quirks(send_max_tokens=False),
        ),
        Provider(
            name="custom",
            label="Custom model",
            base_url="",
            adapter=openai_wire,
            resolve=resolve.custom_model,
            uses_custom_models=True,
        ),
        Provider(
            name="anthropic",
            label="Anthropic",
            base_url=settings.anthropic_base_url.rstrip("/"),
            adapter=AnthropicMessages(settings.anthropic_version),
            resolve=resolve.by_key,
            key_field="anthropic_api_key",
            auth="x-api-key",
        ),
        Provider(
            name="google",
            label="Google Gemini",
            base_url=settings.google_base_url.rstrip("/"),
            adapter=GeminiGenerateContent(),
            resolve=resolve.by_key,
            key_field="google_gemini_api_key",
            auth="x-goog-api-key",
        ),
        Provider(
            name="ollama",
            label="Ollama",
            base_url=settings.ollama_base_url.rstrip("/"),
            adapter=OllamaChat(),
            resolve=resolve.by_key,
        ),
    ]
    return {p.name: p for p in providers}


# Profile field -> the settings field (chatbot-ui's environment variable) that overrides it
# for every user, as chatbot-ui's server did when it read a profile.
PROFILE_ENV: dict[str, str] = {
    "openai_api_key": "openai_api_key",
    "openai_organization_id": "openai_organization_id",
    "anthropic_api_key": "anthropic_api_key",
    "google_gemini_api_key": "google_gemini_api_key",
    "mistral_api_key": "mistral_api_key",
    "groq_api_key": "groq_api_key",
    "perplexity_api_key": "perplexity_api_key",
    "openrouter_api_key": "openrouter_api_key",
    "azure_openai_api_key": "azure_openai_api_key",
    "azure_openai_endpoint": "azure_openai_endpoint",
    "azure_openai_35_turbo_id": "azure_gpt_35_turbo_name",
    "azure_openai_45_turbo_id": "azure_gpt_45_turbo_name",
    "azure_openai_45_vision_id": "azure_gpt_45_vision_name",
    "azure_openai_embeddings_id": "azure_embeddings_name",
}


def profile_overrides(settings: Settings) -> dict[str, str]:
    overrides = {}
    for profile_field, settings_field in PROFILE_ENV.items():
        value = settings.env_value(settings_field)
        if value is not None:
            overrides[profile_field] = value
    return overrides


# Each provider with a key, and the profile field (and settings field) that holds it.
PROVIDER_KEY_FIELDS: dict[str, str] = {
    "openai": "openai_api_key",
    "azure": "azure_openai_api_key",
    "anthropic": "anthropic_api_key",
    "google": "google_gemini_api_key",
    "mistral": "mistral_api_key",
    "groq": "groq_api_key",
    "perplexity": "perplexity_api_key",
    "openrouter": "openrouter_api_key",
}

# chatbot-ui's GET /api/keys names, each with the settings field that overrides it.
ENV_KEY_MAP: dict[str, str] = {
    **PROVIDER_KEY_FIELDS,
    "openai_organization_id": "openai_organization_id",
    "azure_openai_endpoint": "azure_openai_endpoint",
    "azure_gpt_35_turbo_name": "azure_gpt_35_turbo_name",
    "azure_gpt_45_vision_name": "azure_gpt_45_vision_name",
    "azure_gpt_45_turbo_name": "azure_gpt_45_turbo_name",
    "azure_embeddings_name": "azure_embeddings_name",
}
