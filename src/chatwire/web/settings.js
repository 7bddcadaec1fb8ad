// The settings page: the user's provider keys (always shown masked), custom models and
// bearer tokens.

import { json } from "./api.js";
import { clear, field, h } from "./dom.js";

const WORDS = {
  openai: "OpenAI", api: "API", id: "ID", azure: "Azure", gemini: "Gemini", google: "Google",
  openrouter: "OpenRouter", xai: "xAI", deepseek: "DeepSeek", url: "URL", gpt: "GPT",
};

/** "mistral_api_key" -> "Mistral API key". */
export function labelOf(name) {
  const [first, ...rest] = name.split("_");
  const head = WORDS[first] || first.charAt(0).toUpperCase() + first.slice(1);
  return [head, ...rest.map((w) => WORDS[w] || w)].join(" ");
}

export async function settingsPage(main) {
  const status = h("p", { class: "notice", id: "settings-notice", role: "status" });
  const keys = h("section", { class: "panel", id: "keys", "aria-labelledby": "keys-title" });
  const custom = h("section", { class: "panel", id: "custom", "aria-labelledby": "custom-title" });
  const tokens = h("section", { class: "panel", id: "tokens", "aria-labelledby": "tokens-title" });
  clear(main).append(h("div", { class: "settings" }, h("h1", {}, "Settings"), status, keys, custom, tokens));

  const say = (text) => { status.textContent = text; };
  const guarded = (work) => async (event) => {
    if (event) event.preventDefault();
    try {
      await work(event);
    } catch (error) {
      say(error.message);
    }
  };

  // Provider keys

  async function showKeys() {
    const [profile, env] = await Promise.all([json("GET", "/api/profile"), json("GET", "/api/keys")]);
    const fromEnv = env.isUsingEnvKeyMap || {};
    clear(keys).append(
      h("h2", { id: "keys-title" }, "Provider keys"),
      h("p", { class: "hint" }, "Stored encrypted; shown only masked. A key the server's environment sets is used instead of yours."),
    );
    const list = h("div", { class: "rows" });
    for (const [name, value] of Object.entries(profile)) {
      if (name === "username" || name === "use_azure_openai") continue;
      const secret = name.endsWith("_api_key");
      const provider = name.replace(/_api_key$/, "");
      const input = h("input", {
        type: secret ? "password" : "text", name, autocomplete: "off",
        placeholder: secret ? (value ? "Replace the key" : "Paste the key") : "",
        value: secret ? null : value,
      });
      const current = h("span", { class: "current", "data-field": name },
        secret ? (value || "not set") : "");
      const envNote = fromEnv[provider] || fromEnv[name] ? h("small", { class: "hint" }, "set by the server") : null;
      const row = h(
        "form",
        { class: "row", dataset: { field: name } },
        field(labelOf(name), input),
        secret ? current : null,
        envNote,
        h("button", { type: "submit" }, "Save"),
        value ? h("button", { type: "button", class: "quiet", "aria-label": `Clear ${labelOf(name)}`,
          onclick: guarded(async () => { await update({ [name]: null }); say(`${labelOf(name)} cleared.`); }) }, "Clear") : null,
      );
      row.addEventListener("submit", guarded(async () => {
        if (secret && !input.value.trim()) return say(`Paste the ${labelOf(name)} first.`);
        await update({ [name]: input.value.trim() || null });
        say(`${labelOf(name)} saved.`);
      }));
      list.append(row);
    }
    const azure = h("input", { type: "checkbox", id: "use-azure", checked: profile.use_azure_openai });
    azure.addEventListener("change", guarded(async () => {
      await update({ use_azure_openai: azure.checked });
      say(azure.checked ? "OpenAI models go through Azure." : "OpenAI models go to OpenAI.");
    }));
    list.append(h("div", { class: "row check" }, azure, h("label", { for: "use-azure" }, "Use Azure OpenAI for OpenAI's models")));
    keys.append(list);
  }

  async function update(changes) {
    await json("PATCH", "/api/profile", changes);
    await showKeys();
  }

  // Custom models

  async function showCustom(editing = null) {
    const models = await json("GET", "/api/custom-models");
    clear(custom).append(
      h("h2", { id: "custom-title" }, "Custom models"),
      h("p", { class: "hint" }, "Any OpenAI-compatible server: its base URL, model and key."),
    );
    const table = h("ul", { class: "items" });
    for (const model of models) {
      table.append(h(
        "li",
        {},
        h("span", {}, h("strong", {}, model.name), ` ${model.model_id} at ${model.base_url}`),
        h("button", { type: "button", class: "quiet", "aria-label": `Edit ${model.name}`, onclick: () => showCustom(model).catch((e) => say(e.message)) }, "Edit"),
        h("button", { type: "button", class: "quiet", "aria-label": `Remove ${model.name}`,
          onclick: guarded(async () => {
            await json("DELETE", `/api/custom-models/${model.id}`);
            say(`${model.name} removed.`);
            await showCustom();
          }) }, "Remove"),
      ));
    }
    if (!models.length) table.append(h("li", { class: "empty" }, "None yet"));
    const inputs = {
      name: h("input", { name: "name", required: true, value: editing?.name }),
      model_id: h("input", { name: "model_id", required: true, value: editing?.model_id }),
      base_url: h("input", { name: "base_url", type: "url", required: true, placeholder: "https://example.com/v1", value: editing?.base_url }),
      api_key: h("input", { name: "api_key", type: "password", autocomplete: "off", placeholder: editing ? "Leave empty to keep the key" : "" }),
      context_length: h("input", { name: "context_length", type: "number", min: 1, value: editing?.context_length ?? 4096 }),
    };
    const form = h(
      "form",
      { class: "grid", id: "custom-form" },
      h("h3", {}, editing ? `Edit ${editing.name}` : "Add a custom model"),
      field("Name", inputs.name),
      field("Model ID", inputs.model_id),
      field("Base URL", inputs.base_url),
      field("API key", inputs.api_key),
      field("Context length", inputs.context_length),
      h("div", { class: "actions" },
        editing ? h("button", { type: "button", class: "quiet", onclick: () => showCustom() }, "Cancel") : null,
        h("button", { type: "submit" }, editing ? "Save" : "Add")),
    );
    form.addEventListener("submit", guarded(async () => {
      const body = {
        name: inputs.name.value.trim(),
        model_id: inputs.model_id.value.trim(),
        base_url: inputs.base_url.value.trim(),
        context_length: Number(inputs.context_length.value) || 4096,
      };
      if (inputs.api_key.value || !editing) body.api_key = inputs.api_key.value;
      if (editing) await json("PATCH", `/api/custom-models/${editing.id}`, body);
      else await json("POST", "/api/custom-models", body);
      say(`${body.name} ${editing ? "saved" : "added"}.`);
      await showCustom();
    }));
    custom.append(table, form);
    if (editing) inputs.name.focus();
  }

  // Tokens

  async function showTokens(created = null) {
    const list = await json("GET", "/api/tokens");
    clear(tokens).append(
      h("h2", { id: "tokens-title" }, "Tokens"),
      h("p", { class: "hint" }, "Bearer tokens for chatwire's APIs (Authorization: Bearer <token>) and for signing in here."),
    );
    if (created) {
      const shown = h("input", { id: "new-token", readonly: true, value: created, class: "mono" });
      tokens.append(h("div", { class: "new-token", role: "alert" },
        field("Your new token: copy it now, chatwire shows it only once", shown)));
      setTimeout(() => shown.select(), 0);
    }
    const items = h("ul", { class: "items", id: "token-list" });
    for (const token of list) {
      const made = new Date(token.created_at).toLocaleString();
      items.append(h(
        "li",
        { class: token.revoked_at ? "revoked" : "" },
        h("span", {}, `Token ${token.id}, created ${made}`, token.revoked_at ? " (revoked)" : ""),
        token.revoked_at ? null : h("button", { type: "button", class: "quiet", "aria-label": `Revoke token ${token.id}`,
          onclick: guarded(async () => {
            await json("DELETE", `/api/tokens/${token.id}`);
            say(`Token ${token.id} revoked.`);
            await showTokens();
          }) }, "Revoke"),
      ));
    }
    const create = h("button", { type: "button", id: "create-token", onclick: guarded(async () => {
      const made = await json("POST", "/api/tokens");
      await showTokens(made.token);
    }) }, "Create a token");
    tokens.append(items, create);
  }

  try {
    await Promise.all([showKeys(), showCustom(), showTokens()]);
  } catch (error) {
    say(error.message);
  }
}
