// The usage page: the tokens and cost of the signed-in user's chats (an admin: everyone's,
// or one user's, one token's), by day and by model as charts, from GET /api/usage. Costs
// stay the exact decimal strings the API sends; the chats of models with no price are
// counted apart, never shown as costing $0.

import { json } from "./api.js";
import { barChart } from "./charts.js";
import { clear, field, h } from "./dom.js";

const COLORS = { input: "#2f5bd3", output: "#e8893a", cost: "#1e8a5a" };
const SPANS = { "7d": "Last 7 days", "30d": "Last 30 days", "90d": "Last 90 days" };

/** The text of a group's cost: exact dollars, and the chats no price covers. */
export function costText(line) {
  const unpriced = line.unpriced_requests;
  if (unpriced && unpriced === line.requests) return "unknown (no price for these models)";
  const dollars = `$${line.cost}`;
  if (!unpriced) return dollars;
  return `${dollars} + ${unpriced} ${unpriced === 1 ? "chat" : "chats"} of unpriced models`;
}

const count = (n) => n.toLocaleString("en-US");

/** An axis's dollar labels, with the places its largest value needs (chats cost fractions of a cent). */
function dollars(values) {
  const most = Math.max(...values, 0);
  const places = most > 0 ? Math.min(10, Math.max(2, 1 - Math.floor(Math.log10(most)))) : 2;
  return (v) => (v === 0 ? "$0" : `$${v.toFixed(places)}`);
}

/** Every UTC day from `since` to today, as "YYYY-MM-DD". */
function daysFrom(since) {
  const days = [];
  const day = new Date(since.slice(0, 10) + "T00:00:00Z");
  const today = new Date().toISOString().slice(0, 10);
  for (let key = day.toISOString().slice(0, 10); key <= today && days.length < 400;) {
    days.push(key);
    day.setUTCDate(day.getUTCDate() + 1);
    key = day.toISOString().slice(0, 10);
  }
  return days;
}

export async function usagePage(main, session) {
  const admin = session.role === "admin";
  const notice = h("p", { class: "notice", id: "usage-notice", role: "status" });
  const since = h("select", { id: "usage-since" },
    Object.entries(SPANS).map(([value, label]) => h("option", { value, selected: value === "30d" }, label)));
  const user = admin ? h("select", { id: "usage-user" }, h("option", { value: "" }, "Everyone")) : null;
  const token = h("select", { id: "usage-token" }, h("option", { value: "" }, "All tokens"));
  const by = h("select", { id: "usage-by" },
    h("option", { value: "model" }, "Model"),
    h("option", { value: "token" }, "Token"),
    admin ? h("option", { value: "user" }, "User") : null);
  const totals = h("dl", { class: "totals", id: "usage-totals" });
  const charts = {
    dayTokens: h("figure", { class: "chart panel", id: "chart-day-tokens" }),
    dayCost: h("figure", { class: "chart panel", id: "chart-day-cost" }),
    modelTokens: h("figure", { class: "chart panel", id: "chart-model-tokens" }),
    modelCost: h("figure", { class: "chart panel", id: "chart-model-cost" }),
  };
  const table = h("div", { class: "table-wrap", id: "usage-table" });
  clear(main).append(h(
    "div",
    { class: "usage" },
    h("h1", {}, admin ? "Usage: everyone's chats" : "Your usage"),
    notice,
    h("form", { class: "filters panel", id: "usage-filters", onsubmit: (event) => event.preventDefault() },
      field("Period", since),
      user ? field("User", user) : null,
      field("Token", token)),
    h("section", { class: "panel", "aria-labelledby": "totals-title" },
      h("h2", { id: "totals-title" }, "Totals"),
      totals,
      h("p", { class: "hint" }, "As chatwire's ledger holds them. Where a provider reported no token counts, or a reply was cut before it did, the counts are chatwire's estimates."),
    ),
    h("div", { class: "charts" }, Object.values(charts)),
    h("section", { class: "panel", "aria-labelledby": "breakdown-title" },
      h("h2", { id: "breakdown-title" }, "Breakdown"),
      field("Group by", by),
      table),
  ));

  let users = new Map(); // id -> name, for an admin's "by user" and filter
  const say = (text) => { notice.textContent = text; };

  function query(extra) {
    const params = new URLSearchParams({ since: since.value, ...extra });
    if (user?.value) params.set("user", user.value);
    if (token.value) params.set("token", token.value);
    return `/api/usage?${params}`;
  }

  async function loadTokens() {
    const list = admin
      ? await json("GET", `/api/admin/tokens${user.value ? `?user_id=${user.value}` : ""}`)
      : await json("GET", "/api/tokens");
    const kept = token.value;
    token.replaceChildren(h("option", { value: "" }, "All tokens"));
    for (const t of list) {
      const owner = admin ? ` of ${t.user}` : "";
      const name = t.name ? ` "${t.name}"` : "";
      token.append(h("option", { value: t.id, selected: String(t.id) === kept },
        `Token ${t.id}${name}${owner}${t.revoked_at ? " (revoked)" : ""}`));
    }
  }

  function keyText(kind, key) {
    if (kind === "token") return key === null ? "Signed-in pages (no token)" : `Token ${key}`;
    if (kind === "user") return users.get(key) ?? `User ${key}`;
    return key ?? "unknown";
  }

  function showTotals(total) {
    const items = [
      ["Chats", count(total.requests)],
      ["Input tokens", count(total.input_tokens)],
      ["Output tokens", count(total.output_tokens)],
      ["Cost", costText(total)],
    ];
    totals.replaceChildren(...items.flatMap(([label, value]) => [
      h("div", { class: "total" }, h("dt", {}, label), h("dd", { "data-total": label }, value)),
    ]));
  }

  // A filter changed while a report was on its way: only the latest request's answer is
  // drawn, whatever order the answers come back in.
  let breakdownAsked = 0;
  let chartsAsked = 0;

  async function showBreakdown() {
    const kind = by.value;
    const asked = ++breakdownAsked;
    const report = await json("GET", query({ by: kind }));
    if (asked !== breakdownAsked) return;
    const head = ["", "Chats", "Input tokens", "Cached input", "Output tokens", "Reasoning", "Cost"];
    head[0] = { model: "Model", token: "Token", user: "User" }[kind];
    const rows = report.groups.map((g) => h("tr", {},
      h("th", { scope: "row" }, keyText(kind, g.key)),
      [g.requests, g.input_tokens, g.cached_input_tokens, g.output_tokens, g.reasoning_tokens]
        .map((n) => h("td", { class: "num" }, count(n))),
      h("td", { class: "num" }, costText(g))));
    table.replaceChildren(rows.length
      ? h("table", {}, h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows))
      : h("p", { class: "empty" }, "No chats in this period."));
  }

  async function showCharts() {
    const asked = ++chartsAsked;
    const [days, models] = await Promise.all([json("GET", query({ by: "day" })), json("GET", query({ by: "model" }))]);
    if (asked !== chartsAsked) return;
    showTotals(days.total);
    const byDay = new Map(days.groups.map((g) => [g.key, g]));
    const dayKeys = daysFrom(days.since);
    const dayLabels = dayKeys.map((d) => new Date(d + "T00:00:00Z").toLocaleDateString("en-US", { month: "short", day: "numeric", timeZone: "UTC" }));
    const of = (keys, groups, pick) => keys.map((k) => (groups.has(k) ? pick(groups.get(k)) : 0));
    const tokens = (keys, groups, title, labels) => ({
      title, labels,
      series: [
        { label: "Input tokens", color: COLORS.input, values: of(keys, groups, (g) => g.input_tokens), format: count },
        { label: "Output tokens", color: COLORS.output, values: of(keys, groups, (g) => g.output_tokens), format: count },
      ],
    });
    // Drawn from the decimal strings as numbers; the exact figures are in the tables.
    const cost = (keys, groups, title, labels) => {
      const values = of(keys, groups, (g) => Number(g.cost));
      return {
        title, labels,
        series: [{ label: "Cost (US dollars, priced models only)", color: COLORS.cost, values, format: dollars(values) }],
      };
    };
    const byModel = new Map(models.groups.map((g) => [g.key, g]));
    const modelKeys = models.groups.map((g) => g.key);
    const modelLabels = modelKeys.map((k) => String(k).split("/").pop());
    await Promise.all([
      barChart(charts.dayTokens, tokens(dayKeys, byDay, "Tokens by day (UTC)", dayLabels)),
      barChart(charts.dayCost, cost(dayKeys, byDay, "Cost by day (UTC)", dayLabels)),
      barChart(charts.modelTokens, tokens(modelKeys, byModel, "Tokens by model", modelLabels)),
      barChart(charts.modelCost, cost(modelKeys, byModel, "Cost by model", modelLabels)),
    ]);
  }

  async function refresh() {
    say("");
    try {
      await Promise.all([showCharts(), showBreakdown()]);
    } catch (error) {
      say(error.message);
    }
  }

  since.addEventListener("change", refresh);
  token.addEventListener("change", refresh);
  by.addEventListener("change", () => showBreakdown().catch((error) => say(error.message)));
  user?.addEventListener("change", async () => {
    token.value = "";
    try {
      await loadTokens();
    } catch (error) {
      say(error.message);
    }
    await refresh();
  });

  try {
    if (admin) {
      const list = await json("GET", "/api/admin/users");
      users = new Map(list.map((u) => [u.id, u.name]));
      for (const u of list) user.append(h("option", { value: u.id }, u.name));
    }
    await loadTokens();
  } catch (error) {
    say(error.message);
  }
  await refresh();
}
