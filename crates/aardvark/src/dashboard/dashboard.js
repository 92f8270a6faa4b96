// The dashboard: a single page over the JSON API (no library, nothing from another host).
// Views are routes of the URL's hash; every list is read a page at a time; every number links
// to the rows behind it. With authentication on, the page asks for a token once, keeps it for
// the browser session, and asks again when the server answers 401.
"use strict";

const PAGE = 50;
const TOKEN_KEY = "aardvark.token";
const DAY_MS = 86400000;

// ---- DOM helpers: elements are built, never parsed from strings, so ARNs and AWS messages
// cannot inject markup.
function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : value);
  }
  append(element, children);
  return element;
}
function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}
const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) element.setAttribute(key, value);
  append(element, children);
  return element;
}
function link(href, text, attrs) { return h("a", Object.assign({ href }, attrs || {}), text); }
function statusBadge(status) { return h("span", { class: `status status-${status}`, "data-status": status }, status); }
function when(text) { return text ? text.replace("T", " ").replace("Z", " UTC") : "never"; }
function millis(ms) { return ms ? new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC" : "never (in AWS's window)"; }
function duration(ms) {
  if (ms === null || ms === undefined) return "";
  const seconds = Math.round(ms / 1000);
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
function table(headers, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, headers.map((header) => header instanceof Node ? header : h("th", {}, header)))),
    h("tbody", {}, rows));
}

// ---- The API, with the token.
class Unauthorized extends Error {}
function token() { return sessionStorage.getItem(TOKEN_KEY); }
async function api(path) {
  // Always Bearer, so that the server's 401 never offers Basic and the browser never shows
  // its own prompt.
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token() || "-"}` } });
  if (response.status === 401) throw new Unauthorized((await response.json()).message);
  const body = await response.json();
  if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
  return body;
}
async function apiPost(path, payload) {
  const response = await fetch(path, {
    method: "POST",
    headers: { Authorization: `Bearer ${token() || "-"}`, "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  });
  if (response.status === 401) throw new Unauthorized((await response.json()).message);
  const body = await response.json();
  if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
  return body;
}
function askForToken(reason) {
  const dialog = document.getElementById("token-dialog");
  document.getElementById("token-reason").textContent = token()
    ? `The server refused the token (${reason}). Enter another one.`
    : "This server asks for an API token.";
  document.getElementById("token-input").value = "";
  if (!dialog.open) dialog.showModal();
}

// ---- Routing: #/view/argument?query
function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { view: parts[0] || "overview", arg: parts.slice(1).join("/"), params: new URLSearchParams(query || "") };
}
function href(view, arg, params) {
  const query = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v !== null && v !== undefined && v !== "")).toString();
  return `#/${view}${arg ? "/" + encodeURIComponent(arg) : ""}${query ? "?" + query : ""}`;
}
function intParam(params, name, fallback, min, max) {
  const value = Number.parseInt(params.get(name) || "", 10);
  return Number.isFinite(value) && value >= min && value <= max ? value : fallback;
}
function pager(page, total, count, to) {
  const pages = Math.max(1, Math.ceil(total / count));
  return h("div", { class: "pager" },
    h("button", { disabled: page <= 1, "data-page": "previous", onclick: () => { location.hash = to(page - 1); } }, "‹ Previous"),
    h("span", { class: "page-of" }, `page ${page} of ${pages} (${total})`),
    h("button", { disabled: page >= pages, "data-page": "next", onclick: () => { location.hash = to(page + 1); } }, "Next ›"));
}

// ---- Views
const FINDING_TYPES = ["unused_role", "unused_access_key", "unused_password", "unused_permission"];
const views = {
  async overview(_, params) {
    const staleDays = intParam(params, "stale_days", 2, 1, 3650);
    const [counts, stale, runs, findings] = await Promise.all([
      Promise.all(["ok", "partial", "failed", "interrupted", "never"].map((status) =>
        api(`/api/1/accounts?status=${status}&count=0`).then((page) => [status, page.total]))),
      api(`/api/1/accounts?stale_days=${staleDays}&count=0`),
      api("/api/1/runs?count=10"),
      api("/api/1/findings/summary"),
    ]);
    const staleInput = h("input", { type: "number", min: 1, max: 3650, value: staleDays, id: "stale-days" });
    return [
      h("h1", {}, "Overview"),
      h("h2", {}, "Accounts by status"),
      h("div", { class: "cards", id: "status-cards" }, counts.map(([status, total]) =>
        h("div", { class: "card" },
          link(href("accounts", "", { status }), total, { class: `number status-${status}`, "data-count": status }),
          h("span", { class: "label" }, status)))),
      h("h2", {}, "Not collected successfully"),
      h("div", { class: "controls" },
        h("label", {}, "for more than ", staleInput, " days: "),
        h("button", { onclick: () => { location.hash = href("overview", "", { stale_days: staleInput.value }); } }, "Show"),
        link(href("accounts", "", { stale_days: staleDays }), `${stale.total} accounts`, { id: "stale-count" })),
      h("h2", {}, "Active findings"),
      h("div", { class: "cards", id: "finding-cards" }, FINDING_TYPES.map((type) =>
        h("div", { class: "card" },
          link(href("findings", "", { type, status: "active" }), findings.totals[type].active, { class: "number", "data-findings": type }),
          h("span", { class: "label" }, type.replace(/_/g, " "))))),
      h("h2", {}, "Latest runs"),
      runsTable(runs.runs),
    ];
  },

  async findings(_, params) {
    const page = intParam(params, "page", 1, 1, 1e9);
    const filters = {};
    for (const name of ["type", "status", "account"]) if (params.get(name)) filters[name] = params.get(name);
    const body = await api(`/api/1/findings?${new URLSearchParams(Object.assign({ page, count: PAGE }, filters))}`);
    const select = (name, choices) => h("select", { id: `finding-${name}`, onchange: (event) => {
      location.hash = href("findings", "", Object.assign({}, filters, { [name]: event.target.value, page: 1 }));
    } }, h("option", { value: "" }, `any ${name}`), choices.map((choice) =>
      h("option", { value: choice, selected: filters[name] === choice }, choice)));
    return [
      h("h1", {}, "Findings"),
      h("div", { class: "controls" }, select("type", FINDING_TYPES), select("status", ["active", "resolved", "archived"])),
      table(["Type", "Status", "Account", "Resource", "First seen", "Last seen", "Why"], body.findings.map((finding) => h("tr", { "data-finding": finding.id },
        h("td", {}, link(href("finding", finding.id), finding.type.replace(/_/g, " "))),
        h("td", {}, statusBadge(finding.status), finding.stale ? h("span", { class: "flag" }, "stale") : null),
        h("td", {}, link(href("account", finding.account), finding.account)),
        h("td", { class: "arn" }, finding.resource),
        h("td", {}, when(finding.first_seen)),
        h("td", {}, when(finding.last_seen)),
        h("td", {}, finding.reason || ""))), { id: "findings" }),
      pager(page, body.total, PAGE, (p) => href("findings", "", Object.assign({}, filters, { page: p }))),
    ];
  },

  async finding(id) {
    const finding = await api(`/api/1/findings/${encodeURIComponent(id)}`);
    const reason = h("input", { id: "finding-reason", placeholder: "why", maxlength: 1000 });
    const archived = finding.status === "archived";
    const act = async () => {
      try {
        await apiPost(`/api/1/findings/${encodeURIComponent(id)}/${archived ? "unarchive" : "archive"}`, { reason: reason.value || (archived ? "unarchived" : "archived"), by: "dashboard" });
        render();
      } catch (err) {
        document.getElementById("finding-error").textContent = err.message;
      }
    };
    return [
      h("h1", {}, `${finding.type.replace(/_/g, " ")}: `, h("span", { class: "arn" }, finding.resource)),
      h("p", {}, statusBadge(finding.status), " ", finding.reason || "", finding.archived_by ? ` (by ${finding.archived_by})` : ""),
      h("p", {}, "Principal: ", link(href("principal", finding.principal), finding.principal), ` in account ${finding.account}; first seen ${when(finding.first_seen)}, last seen ${when(finding.last_seen)}`),
      token() ? h("div", { class: "controls" }, reason,
        h("button", { id: "finding-action", onclick: act }, archived ? "Unarchive" : "Archive"),
        h("span", { id: "finding-error", class: "error" })) : h("p", {}, "Archiving needs an API token."),
      h("h2", {}, "Evidence"),
      h("pre", { id: "evidence" }, JSON.stringify(finding.evidence, null, 2)),
      h("h2", {}, "History"),
      table(["When", "Status", "Why", "Who", "Run"], finding.history.map((change) => h("tr", {},
        h("td", {}, when(change.at)), h("td", {}, statusBadge(change.status)), h("td", {}, change.reason || ""),
        h("td", {}, change.actor || ""), h("td", {}, change.run_id ? link(href("run", String(change.run_id)), change.run_id) : ""))), { id: "finding-history" }),
    ];
  },

  async accounts(_, params) {
    const page = intParam(params, "page", 1, 1, 1e9);
    const status = params.get("status");
    const staleDays = params.get("stale_days");
    const query = new URLSearchParams({ page, count: PAGE });
    if (status) query.set("status", status);
    if (staleDays) query.set("stale_days", staleDays);
    const body = await api(`/api/1/accounts?${query}`);
    const title = status ? `Accounts: ${status}` : staleDays ? `Accounts not collected successfully for ${staleDays} days` : "Accounts";
    return [
      h("h1", {}, title),
      accountsTable(body.accounts),
      pager(page, body.total, PAGE, (p) => href("accounts", "", { status, stale_days: staleDays, page: p })),
    ];
  },

  async failures(_, params) {
    const page = intParam(params, "page", 1, 1, 1e9);
    const [failed, partial] = await Promise.all([
      api(`/api/1/accounts?status=failed&page=${page}&count=${PAGE}`),
      api(`/api/1/accounts?status=partial&page=${page}&count=${PAGE}`),
    ]);
    // The failed principals of the partial accounts on this page, from each one's latest run.
    const runIds = [...new Set(partial.accounts.map((account) => account.last_run))];
    const runs = new Map(await Promise.all(runIds.map(async (id) => [id, await api(`/api/1/runs/${id}`)])));
    const principalRows = partial.accounts.flatMap((account) => {
      const recorded = (runs.get(account.last_run).accounts || []).find((a) => a.id === account.id);
      return (recorded ? recorded.failed : []).map((failure) => h("tr", {},
        h("td", {}, link(href("accounts", "", { status: "partial" }), account.id)),
        h("td", { class: "arn" }, link(href("principal", failure.arn), failure.arn)),
        h("td", { class: "code" }, failure.code),
        h("td", { class: "message" }, failure.message)));
    });
    const total = Math.max(failed.total, partial.total);
    return [
      h("h1", {}, "Failures"),
      h("h2", {}, `Failed accounts (${failed.total})`),
      failed.accounts.length ? table(["Account", "Name", "Code", "Message", "Last success", "Last attempt"],
        failed.accounts.map((account) => h("tr", { "data-account": account.id },
          h("td", {}, account.id),
          h("td", {}, account.name || ""),
          h("td", { class: "code" }, account.failure ? account.failure.code : ""),
          h("td", { class: "message" }, account.failure ? account.failure.message : ""),
          h("td", {}, when(account.last_success)),
          h("td", {}, when(account.last_attempt)))), { id: "failed-accounts" })
        : h("p", { class: "empty" }, "No account failed."),
      h("h2", {}, `Failed principals of partial accounts (${partial.total} accounts)`),
      principalRows.length ? table(["Account", "Principal", "Code", "Message"], principalRows, { id: "failed-principals" })
        : h("p", { class: "empty" }, "No principal failed."),
      pager(page, total, PAGE, (p) => href("failures", "", { page: p })),
    ];
  },

  async unused(_, params) {
    const days = intParam(params, "days", 90, 1, 3650);
    const page = intParam(params, "page", 1, 1, 1e9);
    const sort = params.get("sort") || "unused";
    const body = await api(`/api/1/unused/accounts?days=${days}&sort=${encodeURIComponent(sort)}&page=${page}&count=${PAGE}`);
    const daysInput = h("input", { type: "number", min: 1, max: 3650, value: days, id: "days" });
    const sortable = (key, label) => h("th", { class: "num" },
      h("button", { class: sort === key ? "sorted" : "", "data-sort": key,
        onclick: () => { location.hash = href("unused", "", { days, sort: key }); } }, label));
    return [
      h("h1", {}, `Unused access in the last ${days} days`),
      h("div", { class: "controls" },
        h("label", {}, "Window: ", daysInput, " days "),
        h("button", { id: "apply-days", onclick: () => { location.hash = href("unused", "", { days: daysInput.value, sort }); } }, "Apply")),
      table([h("th", {}, h("button", { class: sort === "account" ? "sorted" : "", "data-sort": "account",
        onclick: () => { location.hash = href("unused", "", { days, sort: "account" }); } }, "Account")),
      sortable("principals", "Principals"), sortable("unused", "Unused principals"),
      sortable("with_unused_services", "With unused services"), h("th", { class: "num" }, "Too new")],
      body.accounts.map((account) => {
        const to = (only) => href("account", account.account, { days, only });
        return h("tr", { "data-account": account.account },
          h("td", {}, link(to(), account.account)),
          h("td", { class: "num" }, link(to(), account.principals)),
          h("td", { class: "num" }, link(to("unused"), account.unused, { "data-unused": account.unused })),
          h("td", { class: "num" }, link(to("with_unused_services"), account.with_unused_services)),
          h("td", { class: "num" }, link(to("too_new"), account.too_new)));
      }), { id: "unused-accounts" }),
      pager(page, body.total, PAGE, (p) => href("unused", "", { days, sort, page: p })),
    ];
  },

  async account(id, params) {
    const days = intParam(params, "days", 90, 1, 3650);
    const page = intParam(params, "page", 1, 1, 1e9);
    const only = params.get("only");
    const status = only ? `&status=${encodeURIComponent(only)}` : "";
    const body = await api(`/api/1/unused?account=${encodeURIComponent(id)}&days=${days}&page=${page}&count=${PAGE}${status}`);
    const rows = body.principals.map((principal) => h("tr", { class: principal.unused_principal && !principal.too_new ? "unused" : "" },
      h("td", { class: "arn" }, link(href("principal", principal.arn, { days }), principal.arn),
        principal.unused_principal && !principal.too_new ? h("span", { class: "flag flag-unused" }, "unused") : null,
        principal.too_new ? h("span", { class: "flag flag-new" }, "too new") : null),
      h("td", {}, principal.kind),
      h("td", {}, millis(principal.last_used)),
      h("td", { class: "num" }, principal.unused.length),
      h("td", { class: "num" }, principal.used.length)));
    return [
      h("h1", {}, `Account ${id}: the last ${days} days`),
      h("p", {}, only ? [`${body.total} principals ${only === "too_new" ? "too new" : only === "unused" ? "unused" : "with unused services"}; `, link(href("account", id, { days }), "show all")] : ""),
      rows.length ? table(["Principal", "Kind", "Last used", "Unused services", "Used services"].map((text, i) => h("th", { class: i >= 3 ? "num" : "" }, text)), rows, { id: "account-principals" })
        : h("p", { class: "empty" }, "No principal on this page."),
      pager(page, body.total, PAGE, (p) => href("account", id, { days, only, page: p })),
    ];
  },

  async principal(arn, params) {
    const days = intParam(params, "days", 90, 1, 3650);
    const [unused, actions, history, recommendations] = await Promise.all([
      api(`/api/1/unused?arn=${encodeURIComponent(arn)}&days=${days}&count=1`),
      api(`/api/1/actions?arn=${encodeURIComponent(arn)}&count=1`),
      api(`/api/1/history?arn=${encodeURIComponent(arn)}&count=1000`),
      api(`/api/1/recommendations?arn=${encodeURIComponent(arn)}&count=1`),
    ]);
    const principal = unused.principals[0];
    if (!principal) return [h("h1", {}, arn), h("p", { class: "empty" }, "This principal is not stored.")];
    const services = [
      ...principal.unused.map((service) => [service, false]),
      ...principal.used.map((service) => [service, true]),
    ].sort((a, b) => a[0].serviceNamespace.localeCompare(b[0].serviceNamespace));
    const actionRows = (actions.principals[0] ? actions.principals[0].actions : []).map((action) => h("tr", {},
      h("td", {}, action.serviceNamespace), h("td", {}, action.action), h("td", {}, millis(action.lastAccessed)),
      h("td", { class: "arn" }, action.entity || ""), h("td", {}, action.region || "")));
    return [
      h("h1", { id: "principal-arn" }, principal.arn),
      h("p", {}, `${principal.kind} in account `, link(href("account", principal.account, { days }), principal.account),
        `; created ${when(principal.created)}; last used ${millis(principal.last_used)}.`,
        principal.unused_principal && !principal.too_new ? h("span", { class: "flag flag-unused" }, `no service used in ${days} days`) : null,
        principal.too_new ? h("span", { class: "flag flag-new" }, `younger than ${days} days`) : null),
      h("h2", {}, `Services in the last ${days} days`),
      table(["Namespace", "Service", "Last used", "In the window"], services.map(([service, used]) => h("tr", { class: used ? "" : "unused", "data-used": used },
        h("td", {}, service.serviceNamespace), h("td", {}, service.serviceName), h("td", {}, millis(service.lastAuthenticated)),
        h("td", {}, used ? "used" : "unused"))), { id: "services" }),
      h("h2", {}, "Last-use history"),
      timeline(history.changes, days),
      h("h2", {}, `Actions (${actionRows.length})`),
      actionRows.length ? table(["Namespace", "Action", "Last accessed", "Entity", "Region"], actionRows, { id: "actions" })
        : h("p", { class: "empty" }, "No tracked action (service-level data, or none of its services tracks actions)."),
      h("h2", {}, "Least-privilege recommendation"),
      recommendationView(recommendations.recommendations[0]),
    ];
  },

  async search(_, params) {
    const phrase = params.get("q") || "";
    const page = intParam(params, "page", 1, 1, 1e9);
    document.getElementById("search").value = phrase;
    if (!phrase) return [h("h1", {}, "Search"), h("p", { class: "empty" }, "Type part of an ARN above.")];
    const body = await api(`/api/1/advisors?phrase=${encodeURIComponent(phrase)}&page=${page}&count=${PAGE}`);
    const arns = Object.keys(body).filter((key) => !["count", "page", "total"].includes(key));
    return [
      h("h1", {}, `Principals matching “${phrase}”`),
      arns.length ? table(["Principal", "Services"], arns.map((arn) => h("tr", {},
        h("td", { class: "arn" }, link(href("principal", arn), arn)), h("td", { class: "num" }, body[arn].length))), { id: "search-results" })
        : h("p", { class: "empty" }, "No principal matches."),
      pager(page, body.total, PAGE, (p) => href("search", "", { q: phrase, page: p })),
    ];
  },

  async run(id) {
    const run = await api(`/api/1/runs/${encodeURIComponent(id)}`);
    const counted = (status) => run.accounts.filter((account) => account.status === status).length;
    const summary = Object.assign({}, run, { accounts: { ok: counted("ok"), partial: counted("partial"), failed: counted("failed") } });
    return [
      h("h1", {}, `Run ${run.id}`),
      runsTable([summary]),
      h("h2", {}, "Accounts"),
      table(["Account", "Status", "Collected", "Failed principals", "Vanished", "Not collected (interrupted)", "Pruned", "-r ARNs not found", "Duration", "Failure"],
        run.accounts.map((account) => h("tr", {},
          h("td", {}, account.id), h("td", {}, statusBadge(account.status)),
          h("td", { class: "num" }, account.collected), h("td", { class: "num" }, account.failed.length),
          h("td", { class: "num" }, account.vanished.length), h("td", { class: "num" }, account.interrupted),
          h("td", { class: "num", title: account.pruned.join("\n") }, account.pruned.length),
          h("td", { class: "num", title: account.not_found.join("\n") }, account.not_found.length),
          h("td", { class: "num" }, duration(account.duration_ms)),
          h("td", {}, account.failure ? [h("span", { class: "code" }, account.failure.code), " ", h("span", { class: "message" }, account.failure.message)] : ""))),
        { id: "run-accounts" }),
    ];
  },
};

// The lines of `before` and `after` with what a unified diff marks them: " ", "-" or "+".
function lineDiff(before, after) {
  const a = before ? before.split("\n") : [], b = after ? after.split("\n") : [];
  const common = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      common[i][j] = a[i] === b[j] ? common[i + 1][j + 1] + 1 : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const lines = [];
  let i = 0, j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) { lines.push([" ", a[i++]]); j++; }
    else if (common[i + 1][j] >= common[i][j + 1]) lines.push(["-", a[i++]]);
    else lines.push(["+", b[j++]]);
  }
  while (i < a.length) lines.push(["-", a[i++]]);
  while (j < b.length) lines.push(["+", b[j++]]);
  return lines;
}

function pretty(document) { return document ? JSON.stringify(document, null, 2) : ""; }

// A principal's recommendation in force: each step's policy before and after, with what goes
// and why, what is kept for want of evidence, and what could not be read.
function recommendationView(recommendation) {
  if (!recommendation) {
    return h("p", { class: "empty", id: "no-recommendation" }, "No recommendation: nothing unused in the window, or this principal's policies were not collected.");
  }
  if (recommendation.rejected) {
    return h("p", { class: "error", id: "recommendation" }, `Not offered: ${recommendation.rejected}`);
  }
  const list = (items, text) => items.length ? h("ul", {}, ...items.map((item) => h("li", {}, ...text(item)))) : null;
  return h("div", { id: "recommendation" },
    h("p", {}, `${recommendation.steps.length} step(s) over the last ${recommendation.window_days} days, computed ${when(recommendation.computed_at)}; `,
      h("code", {}, `aardvark report recommend --arn ${recommendation.principal} --format cli`), " prints the commands."),
    ...recommendation.steps.map((step) => h("div", { class: "step", "data-action": step.action },
      h("h3", {}, `${step.action.replace(/_/g, " ").toLowerCase()}: ${step.new_policy_name || step.policy.name}`,
        h("span", { class: "message" }, ` (${step.policy.kind.replace(/_/g, "-")}, ${step.policy.attached_to})`)),
      list(step.removed, (removed) => [h("code", {}, removed.pattern), ` removed: ${removed.reason}; last used ${when(removed.last_used)}`]),
      step.shared_with_total ? h("p", { class: "message" }, `Also held by ${step.shared_with.join(", ")}${step.shared_with_total > step.shared_with.length ? ` and ${step.shared_with_total - step.shared_with.length} more` : ""}.`) : null,
      h("pre", { class: "diff" }, ...lineDiff(pretty(step.current), pretty(step.recommended)).map(([mark, line]) =>
        h(mark === "-" ? "del" : mark === "+" ? "ins" : "span", {}, `${mark} ${line}`))))),
    recommendation.kept_without_evidence.length ? h("h3", {}, "Kept for want of evidence") : null,
    list(recommendation.kept_without_evidence, (kept) => [h("code", {}, kept.pattern), ` in ${kept.policy}: ${kept.reason}`]),
    recommendation.unreadable.length ? h("h3", {}, "Not handled") : null,
    list(recommendation.unreadable, (unreadable) => [`${unreadable.policy.name}: ${unreadable.reason}`]));
}

function accountsTable(accounts) {
  if (!accounts.length) return h("p", { class: "empty" }, "No account.");
  return table(["Account", "Name", "Status", "Principals", "Last success", "Last attempt", "Failure"],
    accounts.map((account) => h("tr", { "data-account": account.id },
      h("td", {}, link(href("account", account.id), account.id)), h("td", {}, account.name || ""),
      h("td", {}, statusBadge(account.status)), h("td", { class: "num" }, account.principals),
      h("td", {}, when(account.last_success)), h("td", {}, account.last_run ? link(href("run", account.last_run), when(account.last_attempt)) : "never"),
      h("td", {}, account.failure ? [h("span", { class: "code" }, account.failure.code), " ", h("span", { class: "message" }, account.failure.message)] : ""))),
    { id: "accounts" });
}

function runsTable(runs) {
  if (!runs.length) return h("p", { class: "empty" }, "No run yet.");
  return table(["Run", "Status", "Started", "Duration", "Accounts ok", "partial", "failed", "Principals collected", "failed", "vanished"],
    runs.map((run) => {
      const to = href("run", run.id);
      const ms = run.finished ? Date.parse(run.finished) - Date.parse(run.started) : Date.now() - Date.parse(run.started);
      return h("tr", { "data-run": run.id },
        h("td", {}, link(to, run.id)), h("td", {}, statusBadge(run.status)), h("td", {}, when(run.started)),
        h("td", { class: "num" }, duration(ms)),
        h("td", { class: "num" }, link(href("accounts", "", { status: "ok" }), run.accounts.ok)),
        h("td", { class: "num" }, link(href("accounts", "", { status: "partial" }), run.accounts.partial)),
        h("td", { class: "num" }, link(href("failures"), run.accounts.failed)),
        h("td", { class: "num" }, link(to, run.principals.collected)),
        h("td", { class: "num" }, link(href("failures"), run.principals.failed)),
        h("td", { class: "num" }, link(to, run.principals.vanished)));
    }), { id: "runs" });
}

// A lane per namespace: a filled dot at each last use the collector saw, a hollow one where a
// use aged out (0) when it was observed; the window of `days` shaded.
function timeline(changes, days) {
  if (!changes.length) return h("p", { class: "empty" }, "No change recorded.");
  const lanes = [...new Set(changes.map((change) => change.serviceNamespace))].sort();
  const times = changes.flatMap((change) => [change.lastAuthenticated || Date.parse(change.observed), Date.parse(change.observed)]);
  const now = Date.now();
  const start = Math.min(...times, now - days * DAY_MS);
  const end = Math.max(...times, now);
  const [left, right, top, laneHeight] = [120, 20, 24, 26];
  const width = 1000;
  const height = top + lanes.length * laneHeight + 10;
  const x = (t) => left + ((t - start) / Math.max(1, end - start)) * (width - left - right);
  const svg = s("svg", { class: "timeline", id: "timeline", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "last-use history" });
  svg.append(s("rect", { class: "window", x: x(now - days * DAY_MS), y: top - 6, width: x(now) - x(now - days * DAY_MS), height: height - top }));
  const axis = s("g", { class: "axis" });
  for (let i = 0; i <= 4; i++) {
    const t = start + ((end - start) * i) / 4;
    axis.append(s("text", { x: x(t), y: 14, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, new Date(t).toISOString().slice(0, 10)));
  }
  svg.append(axis);
  lanes.forEach((namespace, i) => {
    const y = top + i * laneHeight + laneHeight / 2;
    svg.append(s("text", { class: "label", x: 6, y: y + 4 }, namespace));
    svg.append(s("line", { class: "lane", x1: left, x2: width - right, y1: y, y2: y }));
    for (const change of changes.filter((c) => c.serviceNamespace === namespace)) {
      const used = change.lastAuthenticated > 0;
      const mark = s("circle", { class: used ? "use" : "ageout", cx: x(used ? change.lastAuthenticated : Date.parse(change.observed)), cy: y, r: 5, "data-namespace": namespace });
      mark.append(s("title", {}, used ? `${namespace}: used ${millis(change.lastAuthenticated)} (seen ${when(change.observed)}, run ${change.run})`
        : `${namespace}: aged out (seen ${when(change.observed)}, run ${change.run})`));
      svg.append(mark);
    }
  });
  return svg;
}

// ---- Rendering
let rendering = 0;
async function render() {
  const { view, arg, params } = route();
  const ticket = ++rendering;
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("current", a.dataset.view === view);
  const main = document.getElementById("view");
  main.setAttribute("aria-busy", "true");
  try {
    const content = await (views[view] || views.overview)(arg, params);
    if (ticket !== rendering) return;
    main.replaceChildren(...[content].flat());
    main.dataset.view = view;
  } catch (err) {
    if (ticket !== rendering) return;
    if (err instanceof Unauthorized) {
      main.replaceChildren(h("p", { class: "empty" }, "Waiting for an API token."));
      askForToken(err.message);
    } else {
      main.replaceChildren(h("p", { class: "error" }, `Cannot load this view: ${err.message}`));
    }
    main.dataset.view = "error";
  } finally {
    if (ticket === rendering) main.removeAttribute("aria-busy");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = href("search", "", { q: document.getElementById("search").value.trim() });
  });
  document.getElementById("token-form").addEventListener("submit", () => {
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
    render();
  });
  window.addEventListener("hashchange", render);
  render();
});
