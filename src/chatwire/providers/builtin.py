"""The providers chatwire ships, declared as an outside package would declare its own.

``PROVIDERS`` is registered through the ``chatwire.providers`` entry point group in
``pyproject.toml``; an OpenAI-compatible provider is one ``openai_compatible(...)`` entry
here plus its models in ``catalogue.json``.
"""

from __future__ import annotations

import re

from chatwire.families.anthropic import ANTHROPIC_FAMILY
from chatwire.families.gemini import GEMINI_FAMILY
from chatwire.families.gemini_embeddings import GEMINI_EMBEDDINGS
from chatwire.families.ollama import OLLAMA_EMBEDDINGS, OLLAMA_FAMILY
from chatwire.families.openai import OPENAI_EMBEDDINGS, OPENAI_FAMILY, OpenAIEmbeddings
from chatwire.providers.declaration import Credential, Provider, Rules, openai_compatible

# OpenAI's own behaviour: usage in a stream only when asked for.
OPENAI_RULES = Rules(ask_for_usage=True)

# Mistral (mistral-wire.md): seed is random_seed, max_completion_tokens is max_tokens;
# these are seen rejected with a 422 in practice.
# Each message type forbids unknown fields (a name on a user message, OpenAI's refusal or
# reasoning_content on an assistant one), and tool call ids are 9 letters or digits: ids
# that OpenAI clients made (call_...) are mapped so that a call and its result still match.
# Its embeddings (docs.mistral.ai/api/endpoint/embeddings) take text only, and the dimensions
# as output_dimension.
MISTRAL = openai_compatible(
    "mistral",
    "Mistral",
    "https://api.mistral.ai/v1",
    rules=Rules(
        rename={"seed": "random_seed", "max_completion_tokens": "max_tokens"},
        refuse=frozenset(
            {
                "user",
                "logprobs",
                "top_logprobs",
                "logit_bias",
                "store",
                "service_tier",
                "modalities",
            }
        ),
        roles={"developer": "system"},
        message_fields={
            "system": frozenset({"role", "content"}),
            "user": frozenset({"role", "content"}),
            "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
            "tool": frozenset({"role", "content", "tool_call_id", "name"}),
        },
        call_id=re.compile(r"[A-Za-z0-9]{9}"),
    ),
    embeddings=OpenAIEmbeddings(tokens=False, rename={"dimensions": "output_dimension"}),
)

OPENAI = openai_compatible(
    "openai",
    "OpenAI",
    "https://api.openai.com/v1",
    credentials=(Credential("openai_organization_id", "OPENAI_ORGANIZATION_ID", secret=False),),
    headers={"OpenAI-Organization": "openai_organization_id"},
    # chatbot-ui sent max_tokens to OpenAI only for the retired vision preview.
    rules=Rules(ask_for_usage=True, send_max_tokens=False),
    embeddings=OPENAI_EMBEDDINGS,
)

AZURE = Provider(
    name="azure",
    label="Azure OpenAI",
    family=OPENAI_FAMILY,
    credentials=(
        Credential("azure_openai_api_key", "AZURE_OPENAI_API_KEY"),
        Credential("azure_openai_endpoint", "AZURE_OPENAI_ENDPOINT", secret=False, url=True),
        Credential("azure_openai_35_turbo_id", "AZURE_GPT_35_TURBO_NAME", secret=False),
        Credential("azure_openai_45_turbo_id", "AZURE_GPT_45_TURBO_NAME", secret=False),
        Credential("azure_openai_45_vision_id", "AZURE_GPT_45_VISION_NAME", secret=False),
        Credential("azure_openai_embeddings_id", "AZURE_EMBEDDINGS_NAME", secret=False),
    ),
    key="azure_openai_api_key",
    auth="api-key",
    rules=Rules(ask_for_usage=True, send_max_tokens=False),
    target="azure",
    # chatbot-ui's Azure model names and the profile field holding each one's deployment id.
    deployments={
        "gpt-3.5-turbo": "azure_openai_35_turbo_id",
        "gpt-4-turbo-preview": "azure_openai_45_turbo_id",
        "gpt-4-vision-preview": "azure_openai_45_vision_id",
        # chatbot-ui's retrieval embeds with this model through its embeddings deployment.
        "text-embedding-3-small": "azure_openai_embeddings_id",
    },
    options={"api_version": "2024-10-21"},
    embeddings=OPENAI_EMBEDDINGS,
)

# console.groq.com/docs/openai: these fields are a 400 there, and n must be 1.
GROQ = openai_compatible(
    "groq",
    "Groq",
    "https://api.groq.com/openai/v1",
    rules=Rules(
        ask_for_usage=True,
        refuse=frozenset({"logprobs", "top_logprobs", "logit_bias"}),
        one_choice=True,
        refuse_in_messages=frozenset({"name"}),
    ),
)

# Sonar answers from a web search: no tools, no log probabilities, one choice. chatbot-ui
# sent it neither temperature nor max_tokens.
PERPLEXITY = openai_compatible(
    "perplexity",
    "Perplexity",
    "https://api.perplexity.ai",
    rules=Rules(
        send_temperature=False,
        send_max_tokens=False,
        refuse=frozenset(
            {
                "tools",
                "tool_choice",
                "parallel_tool_calls",
                "logprobs",
                "top_logprobs",
                "logit_bias",
            }
        ),
        one_choice=True,
    ),
)

OPENROUTER = openai_compatible(
    "openrouter",
    "OpenRouter",
    "https://openrouter.ai/api/v1",
    rules=Rules(ask_for_usage=True, send_max_tokens=False),
)

# A user's own server may be anything OpenAI-shaped (vLLM, llama.cpp, Mistral...): it is
# sent what the client sent, and not asked for usage with a field some of them refuse.
CUSTOM = Provider(
    name="custom",
    label="Custom model",
    family=OPENAI_FAMILY,
    target="custom",
    embeddings=OPENAI_EMBEDDINGS,
)

ANTHROPIC = Provider(
    name="anthropic",
    label="Anthropic",
    family=ANTHROPIC_FAMILY,
    base_url="https://api.anthropic.com/v1",
    credentials=(Credential("anthropic_api_key", "ANTHROPIC_API_KEY"),),
    key="anthropic_api_key",
    auth="x-api-key",
    options={"version": "2023-06-01"},
)

GOOGLE = Provider(
    name="google",
    label="Google Gemini",
    family=GEMINI_FAMILY,
    base_url="https://generativelanguage.googleapis.com/v1beta",
    credentials=(Credential("google_gemini_api_key", "GOOGLE_GEMINI_API_KEY"),),
    key="google_gemini_api_key",
    auth="x-goog-api-key",
    embeddings=GEMINI_EMBEDDINGS,
)

OLLAMA = Provider(
    name="ollama",
    label="Ollama",
    family=OLLAMA_FAMILY,
    base_url="http://127.0.0.1:11434",
    options={"strict_tool_choice": "false"},
    embeddings=OLLAMA_EMBEDDINGS,
)

# api-docs.deepseek.com: only n = 1; no "developer" role (a 400 naming the role); log
# probabilities are an error in thinking mode, the V4 models' default. Usage rides on the last
# chunk; stream_options is taken, and asking costs nothing where usage comes anyway.
DEEPSEEK = openai_compatible(
    "deepseek",
    "DeepSeek",
    "https://api.deepseek.com",
    rules=Rules(
        ask_for_usage=True,
        one_choice=True,
        roles={"developer": "system"},
        refuse=frozenset({"logprobs", "top_logprobs"}),
    ),
)

# docs.x.ai guides/reasoning: reasoning models (every current grok) answer presence_penalty,
# frequency_penalty and stop with an error. Usage in a chunk of its own when asked. Its models'
# max output is not documented (the catalogue gives their context as the bound): chatbot-ui's
# route sends no budget, the model's own default applies.
XAI = openai_compatible(
    "xai",
    "xAI",
    "https://api.x.ai/v1",
    rules=Rules(
        ask_for_usage=True,
        send_max_tokens=False,
        refuse=frozenset({"presence_penalty", "frequency_penalty", "stop"}),
    ),
)

# Together's OpenAPI description: no "developer" role, no top_logprobs (its logprobs is a
# number of tokens). Some models report usage only when asked. Max output undocumented, as
# for xAI.
TOGETHER = openai_compatible(
    "together",
    "Together",
    "https://api.together.xyz/v1",
    rules=Rules(
        ask_for_usage=True,
        send_max_tokens=False,
        roles={"developer": "system"},
        refuse=frozenset({"top_logprobs"}),
    ),
)

# docs.fireworks.ai OpenAI compatibility: presence_penalty and frequency_penalty are not
# supported. Usage on the last chunk (the one with the finish reason); stream_options taken.
FIREWORKS = openai_compatible(
    "fireworks",
    "Fireworks",
    "https://api.fireworks.ai/inference/v1",
    rules=Rules(ask_for_usage=True, refuse=frozenset({"presence_penalty", "frequency_penalty"})),
)

# inference-docs.cerebras.ai: "developer" is not exposed (system messages act at that level);
# the SDK takes stream_options.include_usage. Max output undocumented for most models.
CEREBRAS = openai_compatible(
    "cerebras",
    "Cerebras",
    "https://api.cerebras.ai/v1",
    rules=Rules(ask_for_usage=True, send_max_tokens=False, roles={"developer": "system"}),
)

PROVIDERS = (
    MISTRAL,
    OPENAI,
    AZURE,
    GROQ,
    PERPLEXITY,
    OPENROUTER,
    CUSTOM,
    ANTHROPIC,
    GOOGLE,
    OLLAMA,
    DEEPSEEK,
    XAI,
    TOGETHER,
    FIREWORKS,
    CEREBRAS,
)
