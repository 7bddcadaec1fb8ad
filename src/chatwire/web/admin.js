// The admin page: users and their roles, tokens, and the policies that limit them (a
// user's, a token's, the operator's default), all through /api/admin. Only admins get a
// link here; for anyone else the API answers 403 and the page shows its message.

import { json } from "./api.js";
import { clear, field, h } from "./dom.js";

const PERIODS = ["month", "week", "day", "total"];

/** A policy in a few words; null: none of its own. */
export function policyText(policy, none = "default policy") {
  if (!policy) return none;
  const parts = [];
  if (policy.models) parts.push(policy.models.length ? `models ${policy.models.join(", ")}` : "no model");
  if (policy.rpm) parts.push(`${policy.rpm} rpm`);
  if (policy.tpm) parts.push(`${policy.tpm} tpm`);
  if (policy.parallel) parts.push(`${policy.parallel} parallel`);
  if (policy.budget !== null) {
    parts.push(`budget $${policy.budget} ${policy.budget_period === "total" ? "in total" : `a ${policy.budget_period}`}`);
  }
  return parts.length ? parts.join(" · ") : "no limits";
}

/** The fields of a policy form, filled from `policy`; `.body()` gives them as the API takes them. */
function policyFields(policy, prefix) {
  const number = (name) => h("input", {
    type: "number", min: 1, step: 1, name, id: `${prefix}-${name}`, value: policy?.[name] ?? null,
  });
  const inputs = {
    models: h("input", { name: "models", id: `${prefix}-models`, value: policy?.models?.join(" ") ?? null, placeholder: "mistral/* openai/gpt-4o" }),
    rpm: number("rpm"),
    tpm: number("tpm"),
    parallel: number("parallel"),
    budget: h("input", { name: "budget", id: `${prefix}-budget`, inputmode: "decimal", value: policy?.budget ?? null, placeholder: "10.00" }),
    budget_period: h("select", { name: "budget_period", id: `${prefix}-period` },
      PERIODS.map((p) => h("option", { value: p, selected: (policy?.budget_period ?? "month") === p }, p))),
  };
  const nodes = [
    field("Models", inputs.models, "provider/model patterns, separated by spaces; empty: any model"),
    field("Requests a minute", inputs.rpm),
    field("Tokens a minute", inputs.tpm),
    field("Parallel chats", inputs.parallel),
    field("Budget (US dollars)", inputs.budget),
    field("Budget period", inputs.budget_period),
  ];
  const text = (input) => input.value.trim();
  return {
    nodes,
    // Empty fields are sent as null: no limit of that kind.
    body() {
      const models = text(inputs.models);
      const count = (input) => (text(input) ? Number(text(input)) : null);
      return {
        models: models ? models.split(/[\s,]+/).filter(Boolean) : null,
        rpm: count(inputs.rpm),
        tpm: count(inputs.tpm),
        parallel: count(inputs.parallel),
        budget: text(inputs.budget) || null,
        budget_period: inputs.budget_period.value,
      };
    },
    empty() {
      return ["models", "rpm", "tpm", "parallel", "budget"].every((name) => !text(inputs[name]));
    },
  };
}

export async function adminPage(main) {
  const notice = h("p", { class: "notice", id: "admin-notice", role: "status" });
  const usersBox = h("section", { class: "panel", id: "users", "aria-labelledby": "users-title" });
  const editor = h("section", { class: "panel", id: "policy-editor", hidden: true, "aria-labelledby": "editor-title" });
  const tokensBox = h("section", { class: "panel", id: "admin-tokens", "aria-labelledby": "admin-tokens-title" });
  const defaultBox = h("section", { class: "panel", id: "default-policy", "aria-labelledby": "default-title" });
  clear(main).append(h("div", { class: "settings admin" }, h("h1", {}, "Admin"), notice, usersBox, editor, tokensBox, defaultBox));

  const say = (text) => { notice.textContent = text; };
  const guarded = (work) => async (event) => {
    if (event) event.preventDefault();
    try {
      await work(event);
    } catch (error) {
      say(error.message);
    }
  };
  let users = [];

  function shownOnce(id, label, value) {
    const shown = h("input", { id, readonly: true, value, class: "mono" });
    setTimeout(() => shown.select(), 0);
    return h("div", { class: "new-token", role: "alert" }, field(label, shown));
  }

  // The policy editor, for a user or the default

  function editPolicy(title, policy, save) {
    const fields = policyFields(policy, "edit");
    const form = h("form", { class: "grid", id: "policy-form" },
      h("h2", { id: "editor-title" }, title),
      fields.nodes,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "quiet", onclick: () => { editor.hidden = true; } }, "Cancel"),
        h("button", { type: "submit" }, "Save policy")));
    form.addEventListener("submit", guarded(async () => {
      await save(fields.body());
      editor.hidden = true;
    }));
    clear(editor).append(form);
    editor.hidden = false;
    form.querySelector("input").focus();
  }

  // Users

  async function showUsers(created = null) {
    const [list, tokens] = await Promise.all([json("GET", "/api/admin/users"), json("GET", "/api/admin/tokens")]);
    users = list;
    const active = new Map();
    for (const t of tokens) if (!t.revoked_at) active.set(t.user_id, (active.get(t.user_id) || 0) + 1);
    clear(usersBox).append(h("h2", { id: "users-title" }, "Users"));
    if (created) usersBox.append(shownOnce("new-user-token", `${created.user.name}'s token: copy it now, chatwire shows it only once`, created.token));
    const rows = list.map((u) => {
      const role = h("select", { "aria-label": `Role of ${u.name}` },
        ["member", "admin"].map((r) => h("option", { value: r, selected: u.role === r }, r)));
      role.addEventListener("change", guarded(async () => {
        try {
          await json("PATCH", `/api/admin/users/${u.id}`, { role: role.value });
          say(`${u.name}'s role is now ${role.value}.`);
        } finally {
          await showUsers();
        }
      }));
      return h("tr", { dataset: { user: u.name } },
        h("th", { scope: "row" }, u.name),
        h("td", {}, role),
        h("td", { class: "policy" }, policyText(u.policy)),
        h("td", { class: "num" }, String(active.get(u.id) || 0)),
        h("td", { class: "buttons" },
          h("button", { type: "button", class: "quiet", "aria-label": `Edit the policy of ${u.name}`,
            onclick: () => editPolicy(`Policy of ${u.name}`, u.policy, async (body) => {
              await json("PATCH", `/api/admin/users/${u.id}/policy`, body);
              say(`${u.name}'s policy saved.`);
              await showUsers();
            }) }, "Policy"),
          u.policy ? h("button", { type: "button", class: "quiet", "aria-label": `Clear the policy of ${u.name}`,
            onclick: guarded(async () => {
              await json("DELETE", `/api/admin/users/${u.id}/policy`);
              say(`${u.name}'s policy cleared: the default applies.`);
              await showUsers();
            }) }, "Clear") : null));
    });
    usersBox.append(h("div", { class: "table-wrap" }, h("table", { id: "user-table" },
      h("thead", {}, h("tr", {}, ["User", "Role", "Policy", "Active tokens", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows))));

    const name = h("input", { name: "name", id: "new-user-name", required: true, autocomplete: "off" });
    const newRole = h("select", { name: "role", id: "new-user-role" },
      h("option", { value: "member" }, "member"), h("option", { value: "admin" }, "admin"));
    const form = h("form", { class: "grid", id: "new-user" },
      h("h3", {}, "Create a user"),
      field("Name", name),
      field("Role", newRole),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Create user")));
    form.addEventListener("submit", guarded(async () => {
      const made = await json("POST", "/api/admin/users", { name: name.value.trim(), role: newRole.value });
      say(`${made.user.name} created.`);
      await Promise.all([showUsers(made), showTokens()]);
    }));
    usersBox.append(form);
  }

  // Tokens

  async function showTokens(created = null) {
    const list = await json("GET", "/api/admin/tokens");
    clear(tokensBox).append(h("h2", { id: "admin-tokens-title" }, "Tokens"));
    if (created) tokensBox.append(shownOnce("new-token-value", `The new token of ${created.record.user}: copy it now, chatwire shows it only once`, created.token));
    const items = h("ul", { class: "items", id: "admin-token-list" });
    for (const t of list) {
      const name = t.name ? ` "${t.name}"` : "";
      items.append(h("li", { class: t.revoked_at ? "revoked" : "" },
        h("span", {}, `Token ${t.id}${name} of ${t.user}, created ${new Date(t.created_at).toLocaleDateString()}`,
          ` · ${policyText(t.policy, "the user's policy")}`, t.revoked_at ? " (revoked)" : ""),
        t.revoked_at ? null : h("button", { type: "button", class: "quiet", "aria-label": `Edit the policy of token ${t.id}`,
          onclick: () => editPolicy(`Policy of token ${t.id}`, t.policy, async (body) => {
            await json("PATCH", `/api/admin/tokens/${t.id}/policy`, body);
            say(`Token ${t.id}'s policy saved.`);
            await showTokens();
          }) }, "Policy"),
        t.policy && !t.revoked_at ? h("button", { type: "button", class: "quiet", "aria-label": `Clear the policy of token ${t.id}`,
          onclick: guarded(async () => {
            await json("DELETE", `/api/admin/tokens/${t.id}/policy`);
            say(`Token ${t.id}'s policy cleared: its user's applies.`);
            await showTokens();
          }) }, "Clear") : null,
        t.revoked_at ? null : h("button", { type: "button", class: "quiet", "aria-label": `Revoke token ${t.id}`,
          onclick: guarded(async () => {
            await json("DELETE", `/api/admin/tokens/${t.id}`);
            say(`Token ${t.id} revoked.`);
            await Promise.all([showTokens(), showUsers()]);
          }) }, "Revoke")));
    }
    if (!list.length) items.append(h("li", { class: "empty" }, "None yet"));

    const owner = h("select", { name: "user_id", id: "new-token-user" }, users.map((u) => h("option", { value: u.id }, u.name)));
    const tokenName = h("input", { name: "name", id: "new-token-name", autocomplete: "off" });
    const fields = policyFields(null, "token");
    const form = h("form", { class: "grid", id: "new-admin-token" },
      h("h3", {}, "Create a token for a user"),
      field("User", owner),
      field("Token name", tokenName, "Optional; unique among the user's tokens"),
      h("p", { class: "hint wide" }, "Its own policy, if any: leave every limit empty for the user's."),
      fields.nodes,
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Create token")));
    form.addEventListener("submit", guarded(async () => {
      const body = { user_id: Number(owner.value), name: tokenName.value.trim() || null };
      if (!fields.empty()) body.policy = fields.body();
      const made = await json("POST", "/api/admin/tokens", body);
      say(`Token ${made.record.id} created for ${made.record.user}.`);
      await Promise.all([showTokens(made), showUsers()]);
    }));
    tokensBox.append(items, form);
  }

  // The operator's default

  async function showDefault() {
    const { policy } = await json("GET", "/api/admin/policies/default");
    clear(defaultBox).append(
      h("h2", { id: "default-title" }, "Default policy"),
      h("p", { class: "hint" }, "For users with no policy of their own."),
      h("p", { id: "default-text" }, policyText(policy, "none: no limits")),
      h("div", { class: "actions start" },
        h("button", { type: "button", onclick: () => editPolicy("Default policy", policy, async (body) => {
          await json("PATCH", "/api/admin/policies/default", body);
          say("Default policy saved.");
          await Promise.all([showDefault(), showUsers()]);
        }) }, "Edit the default policy"),
        policy ? h("button", { type: "button", class: "quiet", onclick: guarded(async () => {
          await json("DELETE", "/api/admin/policies/default");
          say("Default policy removed.");
          await showDefault();
        }) }, "Remove it") : null));
  }

  try {
    await showUsers();
    await Promise.all([showTokens(), showDefault()]);
  } catch (error) {
    clear(main).append(h("div", { class: "settings" }, h("h1", {}, "Admin"),
      h("p", { class: "error", id: "admin-refused", role: "alert" }, error.message)));
  }
}
