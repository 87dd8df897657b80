// MemCube memory browser. Plain JavaScript, no build step, nothing loaded from outside.
// Every call to /api carries this launch's token in a header. The one-time login address
// (/login/<nonce>) redirects here with the token in the URL fragment, which is moved to
// sessionStorage (this origin only) and out of the address bar;
// data is put on the page with textContent only, never as HTML.
"use strict";

const TOKEN_KEY = "memcube-ui-token";
const CUBE_KEY = "memcube-ui-cube";
const GRAPH_LABEL = 20;  // characters of an entity's name under its node (the tooltip has it whole)

const app = { token: null, cube: "default", cubes: [] };

// -- small helpers ------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

const view = () => document.getElementById("view");
const day = (stamp) => (stamp ? stamp.slice(0, 10) : "");
// Stored times are UTC ("2026-03-01T14:30:00Z"): [date, "HH:MM"], the time "" when it is midnight or absent.
function splitStamp(stamp) {
  if (!stamp) return ["", ""];
  const [d, t = ""] = stamp.replace(/Z$/, "").split("T");
  return [d, /^00:00(:00)?$/.test(t) || !t ? "" : t.slice(0, 5)];
}
// A date alone when there is no time of day, else "2026-03-01 14:30" (UTC, as the forms take it).
const when = (stamp) => splitStamp(stamp).filter(Boolean).join(" ");
const joinStamp = (d, t) => (d ? (t ? `${d}T${t}:00Z` : d) : "");
const shorten = (text, max) => (text && text.length > max ? `${text.slice(0, max - 1).trimEnd()}…` : text || "");
const tags = (list) => (list || []).map((t) => h("span", { class: "tag" }, t));

function notice(message, isError) {
  const box = document.getElementById("notice");
  box.textContent = message || "";
  box.className = isError ? "error" : "";
  box.hidden = !message;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { "X-MemCube-Token": app.token || "" };
  let body = options.body;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof ArrayBuffer)) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/octet-stream";
  }
  const response = await fetch(path, { method: options.method || "GET", headers, body, credentials: "omit", cache: "no-store" });
  if (options.raw) {
    if (!response.ok) throw new ApiError(response.status, `download failed (${response.status})`);
    return response;
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data.error || `request failed (${response.status})`);
  return data;
}

const cubePath = (rest) => `/api/cubes/${encodeURIComponent(app.cube)}${rest}`;

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (Array.isArray(value)) value.forEach((v) => q.append(key, v));
    else if (value !== null && value !== undefined && value !== "") q.set(key, value);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

async function guarded(work) {
  try {
    notice("");
    await work();
  } catch (err) {
    notice(err.message, true);
  }
}

function confirmDialog(title, text, okLabel) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel || "Confirm";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

// -- start-up -------------------------------------------------------------------------

function readToken() {
  const match = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, match[1]);
    history.replaceState(null, "", location.pathname + "#/memories");
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

async function start() {
  app.token = readToken();
  if (!app.token) {
    notice("No token: open the address that `memcube ui` printed (it signs one browser in, once; restart `memcube ui` for a new one).", true);
    return;
  }
  const select = document.getElementById("cube");
  select.addEventListener("change", () => {
    app.cube = select.value;
    sessionStorage.setItem(CUBE_KEY, app.cube);
    route();
  });
  await guarded(async () => {
    app.cubes = await api("/api/cubes");
    select.replaceChildren(...app.cubes.map((c) => h("option", { value: c.cube }, c.access === "read" ? `${c.cube} (read only)` : c.cube)));
    const saved = sessionStorage.getItem(CUBE_KEY);
    app.cube = app.cubes.some((c) => c.cube === saved) ? saved : (app.cubes[0] || {}).cube || "default";
    select.value = app.cube;
  });
  window.addEventListener("hashchange", route);
  if (!app.cubes.length) {
    view().replaceChildren(h("p", { id: "no-cubes" }, "There is no cube this browser may read (see the [access] section of config.toml)."));
    return;
  }
  route();
}

const VIEWS = {
  memories: showMemories,
  memory: showMemory,
  board: showBoard,
  preferences: showPreferences,
  graph: showGraph,
  timeline: showTimeline,
  profile: showProfile,
  activity: showActivity,
  add: showAdd,
  transfer: showTransfer,
};

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const key = VIEWS[name] ? name : "memories";
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.view === key);
  view().replaceChildren(h("p", { class: "muted" }, "Loading…"));
  guarded(() => VIEWS[key](...rest.map(decodeURIComponent))).then(() => {
    if (app.pending) { notice(app.pending); app.pending = null; }  // a message for the view we moved to
  });
}

// -- memories: filters, search, paging -------------------------------------------------

function memoryRow(m) {
  return h("tr", { class: "memory-row", "data-id": m.id },
    h("td", { class: "when" }, day(m.occurred_at || m.created_at)),
    h("td", {}, m.type, m.role ? h("div", { class: "muted" }, m.role) : null),
    h("td", {}, h("a", { href: `#/memory/${m.id}`, class: "open" }, m.text), h("div", {}, tags(m.tags))),
    h("td", { class: `status-${m.status}` }, m.status));
}

async function showMemories() {
  // The filter menus fill in after the first page: their read scans the whole cube and would
  // hold the cube's store lock while the list waits.
  const facets = { types: [], roles: [], tags: [] };
  const filters = { status: "active", type: "", role: "", tag: "", since: "", until: "" };
  const choice = (id, label, values, first) =>
    h("label", {}, label, h("select", { id, onchange: (e) => { filters[id.slice(2)] = e.target.value; load(); } },
      h("option", { value: "" }, first), values.map((v) => h("option", { value: v }, v))));
  const statusSelect = h("select", { id: "f-status", onchange: (e) => { filters.status = e.target.value; load(); } },
    ["active", "archived", "deleted", "any"].map((s) => h("option", { value: s }, s)));
  const date = (id, label) => h("label", {}, label, h("input", { id, type: "date", onchange: (e) => { filters[id.slice(2)] = e.target.value; load(); } }));
  const searchBox = h("input", { id: "search", type: "search", placeholder: "search by meaning and words…", size: 40 });
  const mode = h("select", { id: "search-mode" }, h("option", { value: "hybrid" }, "hybrid"), h("option", { value: "words" }, "words only"));
  const count = h("p", { id: "count", class: "muted" });
  const body = h("tbody", {});
  const more = h("button", { id: "more", hidden: true }, "More");
  let cursor = null;

  async function load(append) {
    await guarded(async () => {
      const page = await api(cubePath(`/memories${query({ ...filters, cursor: append ? cursor : "" })}`));
      if (!append) body.replaceChildren();
      body.append(...page.memories.map(memoryRow));
      cursor = page.next;
      more.hidden = !cursor;
      if (page.total !== undefined) count.textContent = `${page.total} ${page.total === 1 ? "memory" : "memories"}`;
    });
  }

  async function search(event) {
    event.preventDefault();
    if (!searchBox.value.trim()) return load();
    await guarded(async () => {
      const result = await api(cubePath(`/search${query({
        q: searchBox.value, mode: mode.value, type: filters.type ? [filters.type] : [], tag: filters.tag ? [filters.tag] : [],
        include_archived: filters.status === "active" ? "" : "1",
      })}`));
      body.replaceChildren(...result.hits.map((hit) => {
        const row = memoryRow(hit);
        row.querySelector("td.when").append(h("div", { class: "muted" }, Object.keys(hit.signals).join("+")));
        return row;
      }));
      more.hidden = true;
      count.textContent = `${result.hits.length} found for “${result.query}”` + (result.time && result.time_applied ? ` (time: ${result.time.expression})` : "");
    });
  }

  more.addEventListener("click", () => load(true));
  view().replaceChildren(
    h("h2", {}, "Memories"),
    h("form", { class: "searchbar", id: "search-form", onsubmit: search }, searchBox, mode, h("button", { id: "search-go", class: "primary" }, "Search"),
      h("button", { type: "button", id: "search-clear", onclick: () => { searchBox.value = ""; load(); } }, "Clear")),
    h("div", { class: "filters" }, h("label", {}, "status", statusSelect), choice("f-type", "type", facets.types, "any type"),
      choice("f-role", "role", facets.roles, "any role"), choice("f-tag", "tag", facets.tags, "any tag"), date("f-since", "since"), date("f-until", "until")),
    count,
    h("table", { id: "memory-list" }, h("thead", {}, h("tr", {}, h("th", {}, "when"), h("th", {}, "type"), h("th", {}, "memory"), h("th", {}, "status"))), body),
    more);
  await load();
  performance.mark("memcube:list-painted");  // bench/ui.py reads it: the first page is on screen
  const menus = await api(cubePath("/facets"));
  for (const [id, values] of [["f-type", menus.types], ["f-role", menus.roles], ["f-tag", menus.tags]]) {
    const select = document.getElementById(id);
    if (select) select.append(...values.map((v) => h("option", { value: v }, v)));
  }
}

// -- the fields the add and edit forms share --------------------------------------------

// The choices come from the server (/choices): the types and states memory.models allows (and the
// home's custom types), and the roles in use; a role is free text, so "new role…" takes one.
function memoryFields(prefix, ch, m) {
  const id = (name) => `${prefix}-${name}`;
  const pick = (name, values, current) => h("select", { id: id(name) },
    values.map(([value, label]) => h("option", { value, selected: value === current }, label)));
  const type = pick("type", ch.types.map((t) => [t, t]), m.type || "note");
  const roles = m.role && !ch.roles.includes(m.role) ? [...ch.roles, m.role] : ch.roles;
  const role = pick("role", [["", "no role"], ...roles.map((r) => [r, r]), ["\u0000new", "new role…"]], m.role || "");
  const newRole = h("input", { id: id("new-role"), placeholder: "work, home, team lead…", size: 14, hidden: true });
  role.addEventListener("change", () => { newRole.hidden = role.value !== "\u0000new"; if (!newRole.hidden) newRole.focus(); });
  const state = h("select", { id: id("state") });
  const stateLabel = h("label", {}, "state", state);
  const fillStates = (current) => {
    const states = ch.states[type.value] || [];
    state.replaceChildren(...states.map((s) => h("option", { value: s, selected: s === current }, s.replace("_", " "))));
    stateLabel.hidden = !states.length;
  };
  fillStates(m.state);
  type.addEventListener("change", () => fillStates(m.type === type.value ? m.state : null));
  const subject = h("input", { id: id("subject"), value: m.subject || "", size: 18, placeholder: "coffee, editor theme…" });
  // A date and a time, and a "clear" button that empties both: saved empty, the field is cleared.
  const moment = (name, stamp, what) => {
    const [d, t] = splitStamp(stamp);
    const day = h("input", { id: id(`${name}-date`), type: "date", value: d });
    const time = h("input", { id: id(`${name}-time`), type: "time", value: t });
    const clear = h("button", { type: "button", id: id(`${name}-clear`), class: "clear", title: `no ${what}`,
      onclick: () => { day.value = ""; time.value = ""; } }, "clear");
    return [day, time, clear];
  };
  const [dueDate, dueTime, dueClear] = moment("due", m.due_at, "due date");
  const [occDate, occTime, occClear] = moment("occurred", m.occurred_at, "time");
  const tagsBox = h("input", { id: id("tags"), value: (m.tags || []).join(", "), size: 30 });
  const row = h("div", { class: "row memory-fields" },
    h("label", {}, "type", type), stateLabel, h("label", {}, "role", h("span", { class: "row tight" }, role, newRole)),
    h("label", {}, "subject (what a fact or preference is about)", subject), h("label", {}, "tags (comma separated)", tagsBox),
    h("label", {}, "due (date, time UTC)", h("span", { class: "row tight" }, dueDate, dueTime, dueClear)),
    h("label", {}, "happened (date, time UTC)", h("span", { class: "row tight" }, occDate, occTime, occClear)));
  const read = () => ({
    type: type.value,
    state: stateLabel.hidden ? "" : state.value,
    role: role.value === "\u0000new" ? newRole.value.trim() || m.role || "" : role.value,  // "new role…" left empty: unchanged
    subject: subject.value.trim(),
    tags: tagsBox.value.split(",").map((t) => t.trim()).filter(Boolean),
    due_at: joinStamp(dueDate.value, dueTime.value),
    occurred_at: joinStamp(occDate.value, occTime.value),
  });
  return { row, read };
}

const loadChoices = () => api(cubePath("/choices"));

// -- add a memory ---------------------------------------------------------------------------

async function showAdd() {
  const ch = await loadChoices();
  const text = h("textarea", { id: "add-text", placeholder: "what to remember, in a sentence", required: true });
  const fields = memoryFields("add", ch, {});
  async function add(event) {
    event.preventDefault();
    const body = { text: text.value };
    for (const [key, value] of Object.entries(fields.read())) {
      if (value !== "" && !(Array.isArray(value) && !value.length)) body[key] = value;
    }
    await guarded(async () => {
      const added = await api(cubePath("/memories"), { method: "POST", body });
      const o = added.outcome;
      app.pending = (o.created ? "Added." : o.restated ? "Already stored in other words: confirmed that memory." : "Already stored: here it is.")
        + o.superseded.map((s) => ` It replaces an older one (now archived): ${s.reason}`).join("");
      location.hash = `#/memory/${o.id}`;
    });
  }
  view().replaceChildren(h("h2", {}, `Add a memory to “${app.cube}”`),
    h("p", { class: "muted" }, "Stored as the memory_add tool stores it (same checks; written by memcube-ui). A preference or fact with the subject and role of an older one replaces it."),
    h("form", { class: "card", id: "add-form", onsubmit: add }, text, fields.row, h("button", { id: "add-save", class: "primary" }, "Add")));
}

// -- one memory: fields, edit, status, history, chain ------------------------------------

async function showMemory(id) {
  const [data, ch] = await Promise.all([api(cubePath(`/memories/${encodeURIComponent(id)}`)), loadChoices()]);
  const m = data.memory;
  const field = (label, value) => (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)
    ? [] : [h("dt", {}, label), h("dd", {}, value)]);
  const text = h("textarea", { id: "edit-text" }, m.text);
  const fields = memoryFields("edit", ch, m);
  const editImportance = h("input", { id: "edit-importance", type: "number", min: 0, max: 1, step: 0.05, value: m.importance });

  async function save(event) {
    event.preventDefault();
    const patch = {};
    const now = fields.read();
    if (text.value !== m.text) patch.text = text.value;
    if (now.tags.join(",") !== (m.tags || []).join(",")) patch.tags = now.tags;
    if (now.type !== m.type) patch.type = now.type;
    if (now.state && (now.state !== m.state || now.type !== m.type)) patch.state = now.state;
    // An optional field the form leaves empty ("no role", no subject, a cleared date) is named in
    // MemoryPatch.clear, as memory_update's clear does: null would leave it as it is.
    const clear = [];
    const change = (key, value, same) => {
      if (same) return;
      if (value) patch[key] = value;
      else clear.push(key);
    };
    change("role", now.role, now.role === (m.role || ""));
    change("subject", now.subject, now.subject === (m.subject || ""));
    for (const key of ["due_at", "occurred_at"]) change(key, now[key], splitStamp(now[key]).join() === splitStamp(m[key]).join());
    if (clear.length) patch.clear = clear;
    if (Number(editImportance.value) !== m.importance) patch.importance = Number(editImportance.value);
    if (!Object.keys(patch).length) return notice("Nothing changed.");
    await guarded(async () => {
      await api(cubePath(`/memories/${m.id}`), { method: "PATCH", body: patch });
      await showMemory(m.id);
      notice(`Saved: version ${m.version + 1}.`);
    });
  }

  async function act(action) {
    if (action === "purge") {
      const ok = await confirmDialog("Purge this memory for good?",
        "Purge erases the memory completely: its text, tags and vector are removed, and the text is wiped from every earlier version in its history. Only a bare “purged” entry remains as the trace. This cannot be undone. Delete (without purge) keeps a tombstone instead: it cannot be restored either, but its text stays in its history, to be added again.",
        "Purge for good");
      if (!ok) return;
    } else if (action === "delete") {
      const ok = await confirmDialog("Delete this memory?",
        "The assistant will no longer see it. It stays as a tombstone in history (with its text) until it is purged; it cannot be restored (archive it instead to keep that option).", "Delete");
      if (!ok) return;
    }
    await guarded(async () => {
      await api(cubePath(`/memories/${m.id}/${action}`), { method: "POST", body: {} });
      if (action === "purge") {
        app.pending = `Memory ${m.id} was purged.`;
        location.hash = "#/memories";
      } else {
        await showMemory(m.id);
        notice(`Memory ${action === "delete" ? "deleted" : action + "d"}.`);
      }
    });
  }

  const actions = h("div", { class: "row", id: "actions" },
    m.status === "active" ? h("button", { id: "archive", onclick: () => act("archive") }, "Archive") : null,
    m.status === "archived" ? h("button", { id: "restore", onclick: () => act("restore") }, "Restore") : null,
    m.status !== "deleted" ? h("button", { id: "delete", onclick: () => act("delete") }, "Delete") : null,
    h("button", { id: "purge", class: "danger", onclick: () => act("purge") }, "Purge…"));

  const history = h("table", { id: "history" },
    h("thead", {}, h("tr", {}, h("th", {}, "v"), h("th", {}, "what"), h("th", {}, "when"), h("th", {}, "by"), h("th", {}, "changes"))),
    h("tbody", {}, data.history.map((v) => h("tr", { class: "version", "data-version": v.version },
      h("td", {}, v.version), h("td", {}, v.op), h("td", { class: "when" }, when(v.at)), h("td", { class: "client" }, v.client || "—"),
      h("td", {}, Object.entries(v.changes || {}).map(([k, c]) =>
        h("div", {}, h("b", {}, k), ": ", c.old === null || c.old === undefined ? JSON.stringify(c.new)
          : `${JSON.stringify(c.old)} → ${c.new === null || c.new === undefined ? "(none)" : JSON.stringify(c.new)}`)))))));

  const chain = data.chain.length
    ? h("ol", { class: "chain", id: "chain" }, data.chain.map((c) => h("li", { class: c.current ? "current" : "" },
      c.current ? c.text : h("a", { href: `#/memory/${c.id}` }, c.text), " ", h("span", { class: `muted status-${c.status}` }, `(${c.status}, ${day(c.created_at)})`))))
    : h("p", { class: "muted" }, "Nothing replaced this memory and it replaced nothing.");

  view().replaceChildren(
    h("p", {}, h("a", { href: "#/memories" }, "← all memories")),
    h("h2", { id: "memory-text" }, m.text),
    h("div", { class: "split" },
      h("div", {},
        h("form", { class: "card", id: "edit-form", onsubmit: save }, h("h3", {}, "Correct it"), text,
          fields.row, h("div", { class: "row" }, h("label", {}, "importance", editImportance)),
          h("button", { id: "save", class: "primary" }, "Save as a new version")),
        actions,
        h("h3", {}, "History"), history,
        h("h3", {}, "Supersession chain"), chain),
      h("dl", { class: "fields card", id: "fields" },
        field("id", m.id), field("status", h("span", { id: "status", class: `status-${m.status}` }, m.status)), field("type", m.type),
        field("state", m.state), field("due", when(m.due_at)), field("role", m.role), field("subject", m.subject),
        field("version", m.version), field("entities", (m.entities || []).map((e) => h("a", { class: "tag", href: `#/graph/${encodeURIComponent(e)}` }, e))),
        field("occurred", when(m.occurred_at)), field("created", when(m.created_at)), field("updated", when(m.updated_at)),
        field("written by", m.client), field("source", m.source), field("session", m.session_id), field("importance", m.importance),
        field("read", `${m.access_count} times` + (m.last_access ? `, last ${when(m.last_access)}` : "")))));
}

// -- tasks and goals board -------------------------------------------------------------------

async function showBoard() {
  const [data, ch] = await Promise.all([api(cubePath("/tasks")), loadChoices()]);
  const now = new Date().toISOString();
  const card = (m, states) => {
    const overdue = m.due_at && m.due_at < now && !["done", "achieved", "dropped"].includes(m.state);
    const move = h("select", { class: "move", "aria-label": "move to", onchange: (e) => moveTo(m, e.target.value) },
      states.map((s) => h("option", { value: s, selected: s === m.state }, s.replace("_", " "))));
    const tried = h("input", { class: "fb-tried", placeholder: "what was tried" });
    const result = h("input", { class: "fb-result", placeholder: "what happened" });
    return h("div", { class: `task${overdue ? " overdue" : ""}`, draggable: "true", "data-id": m.id,
      ondragstart: (e) => e.dataTransfer.setData("text/plain", m.id) },
      h("a", { href: `#/memory/${m.id}` }, m.text),
      m.due_at ? h("div", { class: "due" }, `${overdue ? "overdue: " : "due "}${when(m.due_at)}`) : null,
      h("div", { class: "row" }, move),
      h("details", { class: "feedback" }, h("summary", {}, `feedback (${(m.feedback || []).length})`),
        h("ul", {}, (m.feedback || []).map((f) => h("li", {}, h("span", { class: "muted" }, day(f.at), " "), f.tried || "", f.result ? ` → ${f.result}` : ""))),
        h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); addFeedback(m, tried.value, result.value); } }, tried, result, h("button", {}, "Log"))));
  };
  async function moveTo(m, state) {
    await guarded(async () => { await api(cubePath(`/memories/${m.id}/progress`), { method: "POST", body: { state } }); await showBoard(); });
  }
  async function addFeedback(m, tried, result) {
    await guarded(async () => {
      await api(cubePath(`/memories/${m.id}/progress`), { method: "POST", body: { feedback: { tried: tried || null, result: result || null } } });
      await showBoard();
    });
  }
  const board = (title, type, states) => {
    const items = data.items.filter((m) => m.type === type);
    return [h("h3", {}, title), h("div", { class: "grid", id: `board-${type}` }, states.map((s) => h("div", {
      class: "column", "data-state": s,
      ondragover: (e) => { e.preventDefault(); e.currentTarget.classList.add("drop"); },
      ondragleave: (e) => e.currentTarget.classList.remove("drop"),
      ondrop: (e) => { e.preventDefault(); const m = items.find((i) => i.id === e.dataTransfer.getData("text/plain")); if (m && m.state !== s) moveTo(m, s); },
    }, h("h3", {}, s.replace("_", " ")), items.filter((m) => m.state === s).map((m) => card(m, states)))))];
  };
  view().replaceChildren(h("div", { id: "board" }, h("h2", {}, "Tasks & goals"), board("Goals", "goal", ch.states.goal), board("Tasks", "task", ch.states.task)));
}

// -- preferences ------------------------------------------------------------------------------

async function showPreferences() {
  const data = await api(cubePath("/preferences"));
  view().replaceChildren(h("div", { id: "preferences" }, h("h2", {}, "Preferences by role"),
    data.roles.length ? null : h("p", { class: "muted" }, "No preferences stored yet."),
    data.roles.map((group) => h("section", { class: "card role-group", "data-role": group.role },
      h("h3", {}, group.role || "any role"),
      h("ul", {}, group.memories.map((m) => h("li", {}, h("a", { href: `#/memory/${m.id}` }, m.text),
        m.subject ? h("span", { class: "muted" }, ` (about ${m.subject})`) : null)))))));
}

// -- entity graph -------------------------------------------------------------------------------

async function showGraph(entity, depthText) {
  const depth = depthText === "2" ? 2 : 1;
  const input = h("input", { id: "entity", value: entity || "", placeholder: "a person, place, project…" });
  const depthSelect = h("select", { id: "depth" }, h("option", { value: "1", selected: depth === 1 }, "depth 1"), h("option", { value: "2", selected: depth === 2 }, "depth 2"));
  const go = (name, d) => { location.hash = `#/graph/${encodeURIComponent(name)}/${d}`; };
  const form = h("form", { class: "row", id: "graph-form", onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) go(input.value.trim(), depthSelect.value); } },
    h("label", {}, "entity", input), h("label", {}, "depth", depthSelect), h("button", { id: "graph-go", class: "primary" }, "Show"));
  if (!entity) {
    const top = await api(cubePath("/entities"));
    view().replaceChildren(h("h2", {}, "Entity graph"), form,
      h("p", { class: "muted" }, "Name an entity, or start from one the most memories mention:"),
      top.entities.length
        ? h("ul", { id: "top-entities", class: "entity-list" }, top.entities.map((e) => h("li", {},
          h("a", { href: `#/graph/${encodeURIComponent(e.name)}/1`, class: "tag", "data-entity": e.name }, e.name),
          h("span", { class: "muted" }, ` ${e.memories}`))))
        : h("p", { class: "muted", id: "top-entities" }, "No memory names an entity yet."));
    return;
  }
  const g = await api(cubePath(`/graph${query({ entity, depth })}`));
  const names = [g.entity, ...g.neighbours.filter((n) => n.toLowerCase() !== g.entity.toLowerCase())].slice(0, 40);
  const width = 900, height = 460, cx = width / 2, cy = height / 2;
  const place = {};
  names.forEach((name, i) => {
    if (i === 0) { place[name.toLowerCase()] = [cx, cy]; return; }
    const angle = (2 * Math.PI * (i - 1)) / Math.max(1, names.length - 1);
    const ring = names.length > 16 && i % 2 ? 0.62 : 0.85;
    place[name.toLowerCase()] = [cx + Math.cos(angle) * cx * ring * 0.9, cy + Math.sin(angle) * (cy - 30) * ring];
  });
  const edges = [];
  for (const r of g.relations) {
    const a = place[r.subject.toLowerCase()], b = place[r.object.toLowerCase()];
    if (a && b) edges.push(svg("line", { class: "edge", x1: a[0], y1: a[1], x2: b[0], y2: b[1] }),
      svg("text", { class: "edge-label", x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2 }, r.predicate));
  }
  for (const name of names.slice(1)) {
    if (!g.relations.some((r) => [r.subject, r.object].map((x) => x.toLowerCase()).includes(name.toLowerCase()))) {
      const [x, y] = place[name.toLowerCase()];
      edges.push(svg("line", { class: "edge", x1: cx, y1: cy, x2: x, y2: y, "stroke-dasharray": "3 3" }));
    }
  }
  const nodes = names.map((name, i) => {
    const [x, y] = place[name.toLowerCase()];
    return svg("g", { class: `node${i === 0 ? " center" : ""}`, "data-entity": name, tabindex: 0, role: "link",
      onclick: () => go(name, depth), onkeydown: (e) => { if (e.key === "Enter") go(name, depth); } },
      // The label sits under its circle (a circle holds no name), cut to GRAPH_LABEL characters; the full name is the tooltip.
      svg("title", {}, `${name} (click to follow)`), svg("circle", { cx: x, cy: y, r: i === 0 ? 18 : 12 }),
      svg("text", { x, y: y + (i === 0 ? 18 : 12) + 13 }, shorten(name, GRAPH_LABEL)));
  });
  view().replaceChildren(h("h2", {}, "Entity graph: ", h("span", { id: "graph-entity" }, g.entity)), form,
    h("div", { class: "split" },
      svg("svg", { class: "graph", id: "graph", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `graph around ${g.entity}` }, edges, nodes),
      h("div", {},
        h("h3", {}, "Relations"),
        g.relations.length ? h("ul", { id: "relations" }, g.relations.map((r) => h("li", {}, `${r.subject} — ${r.predicate} → ${r.object}`,
          r.source_memory ? h("a", { href: `#/memory/${r.source_memory}`, class: "muted" }, " (source)") : null))) : h("p", { class: "muted" }, "none"),
        h("h3", {}, `Memories that mention ${g.entity}`),
        h("ul", { id: "graph-memories" }, g.memories.map((m) => h("li", {}, h("a", { href: `#/memory/${m.id}` }, m.text), h("span", { class: "muted" }, ` ${m.type}`)))))));
  if (names.length < g.neighbours.length + 1) view().append(h("p", { class: "muted" }, `${g.neighbours.length + 1 - names.length} more neighbours not drawn.`));
}

// -- timeline -------------------------------------------------------------------------------------

async function showTimeline() {
  const list = h("div", { id: "timeline" });
  const more = h("button", { id: "timeline-more", hidden: true }, "Earlier");
  let cursor = null, lastDay = null, section = null;
  async function load() {
    const page = await api(cubePath(`/memories${query({ status: "any", cursor, limit: 100 })}`));
    for (const m of page.memories) {
      const d = day(m.created_at);
      if (d !== lastDay) {
        lastDay = d;
        section = h("ul", {});
        list.append(h("h3", {}, d), section);
      }
      section.append(h("li", {}, h("span", { class: "muted" }, m.created_at.slice(11, 16), " "), h("a", { href: `#/memory/${m.id}` }, m.text),
        " ", h("span", { class: `muted status-${m.status}` }, m.type, m.status !== "active" ? `, ${m.status}` : "", m.client ? `, by ${m.client}` : "")));
    }
    cursor = page.next;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => guarded(load));
  view().replaceChildren(h("h2", {}, "Timeline (when each memory was stored)"), list, more);
  await load();
}

// -- profile, activity -----------------------------------------------------------

async function showProfile(role) {
  const p = await api(cubePath(`/profile${query({ role })}`));
  const input = h("input", { id: "profile-role", value: role || "", placeholder: "all roles" });
  view().replaceChildren(h("h2", {}, "Profile"),
    h("p", { class: "muted" }, "Exactly what an assistant receives at the start of a conversation (memory_profile / the start prompt)."),
    h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); location.hash = `#/profile/${encodeURIComponent(input.value.trim())}`; } },
      h("label", {}, "role", input), h("button", {}, "Show")),
    h("p", { class: "muted" }, `about ${p.tokens} tokens of ${p.budget_tokens}; ${p.omitted} lines left out`),
    h("pre", { class: "profile", id: "profile-text" }, p.text));
}

async function showActivity() {
  const a = await api(cubePath("/activity"));
  const table = (id, heads, rows) => h("table", { id }, h("thead", {}, h("tr", {}, heads.map((x) => h("th", {}, x)))), h("tbody", {}, rows));
  view().replaceChildren(h("h2", {}, "Who read and wrote what"),
    h("p", { class: "muted" }, "From the history every change leaves (which client made it) and the calls the access rules refused."),
    h("h3", {}, "Changes by client"),
    table("by-client", ["client", "operation", "count", "last"], a.by_client.map((r) => h("tr", {}, h("td", {}, r.client || "—"), h("td", {}, r.op), h("td", {}, r.count), h("td", { class: "when" }, when(r.last))))),
    h("h3", {}, "Latest changes"),
    table("recent", ["when", "client", "operation", "memory"], a.recent.map((r) => h("tr", {}, h("td", { class: "when" }, when(r.at)), h("td", {}, r.client || "—"), h("td", {}, `${r.op} (v${r.version})`),
      h("td", { class: "change-memory" }, r.text
        ? [h("a", { href: `#/memory/${r.memory_id}`, title: r.memory_id }, shorten(r.text, 80)), r.status && r.status !== "active" ? h("span", { class: `muted status-${r.status}` }, ` (${r.status})`) : null]
        : h("span", { class: "muted", title: r.memory_id }, "(purged: its text is erased)"))))),
    h("h3", {}, "Refused calls"),
    a.denials.length ? table("denials", ["when", "client", "call", "needed"], a.denials.map((d) => h("tr", {}, h("td", { class: "when" }, when(d.at)), h("td", {}, d.client || "—"), h("td", {}, d.action), h("td", {}, d.need)))) : h("p", { class: "muted" }, "none"));
}

// -- export and import -----------------------------------------------------------------------------

async function follow(job, box) {
  const bar = h("div", { class: "progress" }, h("span", {}));
  const line = h("span", { class: "job-line" });
  box.replaceChildren(bar, line);
  for (;;) {
    line.textContent = ` ${job.kind}: ${job.phase} (${job.seconds} s)`;
    if (job.done) break;
    await new Promise((resolve) => setTimeout(resolve, 300));
    job = await api(`/api/jobs/${job.id}`);
  }
  bar.classList.add("done");
  if (job.error) { box.dataset.state = "failed"; line.textContent = ` ${job.kind} failed: ${job.error}`; return job; }
  box.dataset.state = "done";
  return job;
}

async function showTransfer() {
  const exportBox = h("div", { id: "export-status" });
  const importBox = h("div", { id: "import-status" });
  const file = h("input", { id: "import-file", type: "file", accept: ".zip,application/zip" });
  async function doExport() {
    await guarded(async () => {
      const job = await follow(await api(cubePath("/export"), { method: "POST", body: {} }), exportBox);
      if (job.error) return;
      const download = h("button", { id: "export-download", onclick: () => guarded(async () => {
        const blob = await (await api(`/api/jobs/${job.id}/file`, { raw: true })).blob();
        const link = h("a", { href: URL.createObjectURL(blob), download: job.file });
        document.body.append(link); link.click(); link.remove();
      }) }, `Download ${job.file}`);
      exportBox.append(h("p", { class: "job-result" }, `${job.result.memories} memories, ${job.result.entities} entities written.`), download);
    });
  }
  async function doImport() {
    if (!file.files.length) return notice("Choose an archive (.zip from an export) first.", true);
    await guarded(async () => {
      const job = await follow(await api(cubePath("/import"), { method: "POST", body: file.files[0] }), importBox);
      if (job.error) return;
      const r = job.result;
      importBox.append(h("p", { class: "job-result" }, `${r.imported} imported, ${r.skipped_existing} already there, ${r.skipped_duplicate} duplicates skipped, ${r.reembedded} embedded anew.`));
    });
  }
  view().replaceChildren(h("h2", {}, "Export & import"),
    h("section", { class: "card" }, h("h3", {}, `Export cube “${app.cube}”`),
      h("p", { class: "muted" }, "Writes every memory with its history and entities to a .zip archive in the home's exports folder."),
      h("button", { id: "export", class: "primary", onclick: doExport }, "Export"), exportBox),
    h("section", { class: "card" }, h("h3", {}, `Import into “${app.cube}”`),
      h("p", { class: "muted" }, "Adds the memories of an archive; ones already here (same id or same text) are skipped."),
      h("div", { class: "row" }, file, h("button", { id: "import", class: "primary", onclick: doImport }, "Import")), importBox));
}

document.addEventListener("DOMContentLoaded", start);
