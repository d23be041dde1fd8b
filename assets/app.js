// The tenderflow dashboard: plain JavaScript over the JSON API under /v1.
// Pages (by the URL's hash): #/ the tasks and the submit form, #/tasks/ID a
// task, #/deadlines the upcoming deadlines, #/dead-letters the dead letters. Nothing here is trusted as HTML:
// every value is put on the page as text.
"use strict";

const STAGES = ["ingest", "parse", "filter", "extract"];
const POLL_MS = 2000;
// States a task leaves only by a replay: no watch, and no cancel for done.
const FINAL = ["done", "failed", "duplicate", "cancelled"];
let stopPage = () => {};

// ---- small helpers -------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(state) {
  return el("span", { class: `badge s-${state}`, "data-state": state }, state);
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleString();
}

// Server-sent `task` events of a watch, read with fetch: an EventSource
// cannot send the token.
function watch(path, onTask) {
  const controller = new AbortController();
  (async () => {
    const response = await fetch(path, { headers: authHeaders(), signal: controller.signal });
    if (!response.ok || !response.body) return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (name === "task" && data.length) onTask(JSON.parse(data.join("\n")));
      }
    }
  })().catch(() => {});
  return { close: () => controller.abort() };
}

function token() {
  return localStorage.getItem("tenderflow-token") || "";
}

function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

async function api(path, options = {}) {
  // Reads need the token too when one is set: they show error messages
  // and file names.
  const headers = { ...authHeaders(), ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const message = body && body.error ? `${body.error.code}: ${body.error.message}` : `${response.status}`;
    const error = new Error(message);
    error.status = response.status;
    error.code = body && body.error ? body.error.code : undefined;
    throw error;
  }
  return body;
}

function stageStrip(view) {
  return el("div", { class: "stages" },
    STAGES.map((name) => {
      const stage = (view.stages || []).find((s) => s.stage === name) || { state: "pending" };
      const title = `${name}: ${stage.state}` + (stage.attempts ? `, ${stage.attempts} attempt(s)` : "");
      return el("span", { class: `s-${stage.state}`, title, "data-stage": name, "data-stage-state": stage.state }, name);
    }));
}

function setMain(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes);
}

// ---- the tasks page ------------------------------------------------------

function submitSection() {
  const result = el("div", { id: "submit-result", class: "message" });
  const form = el("form", { id: "submit-form", class: "row" },
    el("label", {}, "Documents (the first is the main one; others are amendments)",
      el("input", { id: "file", type: "file", name: "file", multiple: true, required: true })),
    el("label", {}, "Filter",
      el("select", { id: "filter-model", name: "filter_model" },
        el("option", { value: "rules" }, "rules"), el("option", { value: "openai" }, "openai"))),
    el("label", {}, "Extract",
      el("select", { id: "extract-model", name: "extract_model" },
        el("option", { value: "rules" }, "rules"), el("option", { value: "openai" }, "openai"))),
    el("button", { id: "submit-button", type: "submit" }, "Submit"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const files = document.getElementById("file").files;
    if (!files.length) return;
    const data = new FormData();
    for (const file of files) data.append("file", file, file.name);
    data.append("filter_model", document.getElementById("filter-model").value);
    data.append("extract_model", document.getElementById("extract-model").value);
    const button = document.getElementById("submit-button");
    button.disabled = true;
    result.replaceChildren("Submitting…");
    try {
      const body = await api("/v1/documents", { method: "POST", body: data, headers: authHeaders() });
      result.replaceChildren(el("span", { class: "ok" }, "Submitted: "),
        el("a", { href: `#/tasks/${body.task_id}`, "data-task-id": body.task_id }, body.task_id));
      form.reset();
      refreshTasks();
    } catch (error) {
      result.replaceChildren(el("span", { class: "error" }, `Not submitted: ${error.message}`));
    } finally {
      button.disabled = false;
    }
  });
  return el("section", {}, el("h2", {}, "Submit"), form, result);
}

let refreshTasks = () => {};

function tasksPage() {
  const filter = el("select", { id: "state-filter" },
    el("option", { value: "" }, "every state"),
    ["queued", "running", "retrying", "done", "failed", "duplicate", "cancelled"].map((s) => el("option", { value: s }, s)));
  const search = el("input", { id: "task-search", type: "search", placeholder: "project, tender number, owner", "aria-label": "Search" });
  const status = el("span", { class: "muted", id: "tasks-status" });
  const body = el("tbody", { id: "tasks" });
  const table = el("table", {},
    el("thead", {}, el("tr", {}, ["Task", "Document", "State", "Stages", "Attempts", "Updated"].map((h) => el("th", {}, h)))),
    body);
  setMain(submitSection(),
    el("section", {}, el("div", { class: "row" }, el("h2", {}, "Tasks"), filter, search, status), table));
  let timer;
  let stopped = false;
  refreshTasks = async () => {
    clearTimeout(timer);
    try {
      const query = new URLSearchParams({ limit: "100" });
      if (filter.value) query.set("state", filter.value);
      const q = search.value.trim();
      // The search reads the summaries' index, so it finds done tasks.
      if (q) query.set("q", q);
      const page = await api(`/v1/tasks?${query}`);
      if (stopped) return;
      body.replaceChildren(...page.tasks.map(taskRow));
      if (!page.tasks.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, q ? "No done task matches." : "No tasks yet.")));
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      status.textContent = `could not load the tasks: ${error.message}`;
    }
    if (!stopped) timer = setTimeout(refreshTasks, POLL_MS);
  };
  filter.addEventListener("change", refreshTasks);
  let typing;
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(refreshTasks, 250); });
  refreshTasks();
  return () => { stopped = true; clearTimeout(timer); };
}

function taskRow(view) {
  const doc = (view.documents || []).map((d) => d.filename).join(", ");
  return el("tr", { "data-task-id": view.task_id, "data-state": view.state },
    el("td", {}, el("a", { href: `#/tasks/${view.task_id}`, class: "mono" }, view.task_id)),
    el("td", {}, doc),
    el("td", {}, badge(view.state)),
    el("td", {}, stageStrip(view)),
    el("td", {}, view.attempts),
    el("td", {}, when(view.updated_at)));
}

// ---- one task ------------------------------------------------------------

function taskPage(id) {
  const head = el("section", { id: "task-head" }, el("p", { class: "muted" }, "Loading…"));
  const events = el("section", { id: "task-events" });
  const summary = el("section", { id: "task-summary" });
  setMain(head, summary, events);
  let source;
  let stopped = false;
  let summaryShown = false;

  const show = async (view) => {
    head.replaceChildren(...taskHead(view, source, () => cancelled()));
    try {
      const history = await api(`/v1/tasks/${id}/events`);
      if (!stopped) events.replaceChildren(...eventsTable(history.events));
    } catch (error) {
      events.replaceChildren(el("p", { class: "error" }, error.message));
    }
    // A cancelled task may have a summary: its last stage finished while
    // the cancel was on its way.
    if (view.summary && !summaryShown) {
      summaryShown = true;
      try {
        const body = await api(`/v1/tasks/${id}/summary`);
        if (!stopped) summary.replaceChildren(...summaryTable(body));
      } catch (error) {
        summaryShown = false;
        summary.replaceChildren(el("p", { class: "error" }, `summary: ${error.message}`));
      }
    } else if (!summaryShown) {
      summary.replaceChildren(el("h2", {}, "Summary"), el("p", { class: "muted" }, "The summary appears when the task is done."));
    }
  };

  // After a cancel, until the view says so: a failed task's page has no
  // watch to bring the change.
  const cancelled = async () => {
    for (let i = 0; i < 40 && !stopped; i++) {
      const view = await api(`/v1/tasks/${id}`).catch(() => null);
      if (view && view.state === "cancelled") { if (source) source.close(); source = null; return show(view); }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };

  api(`/v1/tasks/${id}`).then((view) => {
    if (stopped) return;
    show(view);
    if (FINAL.includes(view.state)) return;
    // Live updates: one `task` event per change, ending when final.
    source = watch(`/v1/tasks/${id}/watch`, show);
  }).catch((error) => {
    head.replaceChildren(el("h2", {}, `Task ${id}`), el("p", { class: "error" }, error.message));
  });
  return () => { stopped = true; if (source) source.close(); };
}

// The cancel form of a task's page: a reason, and the button.
function cancelForm(view, onCancelled) {
  const reason = el("input", { id: "cancel-reason", type: "text", placeholder: "reason (optional)", maxlength: 1000 });
  const button = el("button", { id: "cancel-button", type: "button", class: "secondary",
    title: "Its stages drop its messages at their next delivery" }, "Cancel task");
  const result = el("span", { id: "cancel-result", class: "message" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    result.replaceChildren("Cancelling…");
    try {
      const body = await api(`/v1/tasks/${view.task_id}`, {
        method: "DELETE",
        headers: { "Content-Type": "application/json", ...authHeaders() },
        body: JSON.stringify({ reason: reason.value || null }),
      });
      result.replaceChildren(el("span", { class: "ok" }, body.already ? "Already cancelled." : "Cancelled."));
      onCancelled();
    } catch (error) {
      button.disabled = false;
      result.replaceChildren(el("span", { class: "error" }, `Not cancelled: ${error.message}`));
    }
  });
  return el("div", { class: "row", id: "cancel-form" }, reason, button, result);
}

function taskHead(view, live, onCancelled) {
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "State"), el("dd", { id: "task-state", "data-state": view.state }, badge(view.state),
      live ? el("span", { class: "live" }, "● live") : null),
    el("dt", {}, "Documents"), el("dd", {}, (view.documents || []).map((d) =>
      el("div", {}, d.filename, " ", el("span", { class: "muted mono" }, `${d.size} B, sha256 ${d.sha256.slice(0, 12)}…`)))),
    (view.files || []).length ? [el("dt", {}, "Files"), el("dd", { id: "task-files" }, view.files.map((f) =>
      el("div", { "data-role": f.role }, el("strong", {}, f.role), " ", f.name, " ", el("span", { class: "muted" }, f.reason))))] : null,
    el("dt", {}, "Options"), el("dd", {}, view.options ? `filter ${view.options.filter_model}, extract ${view.options.extract_model}` : ""),
    el("dt", {}, "Created"), el("dd", {}, when(view.created_at)),
    el("dt", {}, "Finished"), el("dd", {}, when(view.finished_at)),
    view.next_retry_at ? [el("dt", {}, "Next retry"), el("dd", {}, when(view.next_retry_at))] : null,
    view.cancelled ? [el("dt", {}, "Cancelled"), el("dd", { id: "task-cancelled" },
      `${when(view.cancelled.at)} by ${view.cancelled.by}`, view.cancelled.reason ? `: ${view.cancelled.reason}` : "",
      view.summary ? el("div", { class: "muted" }, "Its last stage finished while the cancel was on its way: a summary was stored anyway.") : null)] : null,
    view.last_error ? [el("dt", {}, "Last error"),
      el("dd", { class: "error", id: "task-error" }, `${view.last_error.stage}: ${view.last_error.kind}: ${view.last_error.message}`)] : null);
  const stages = el("table", {},
    el("thead", {}, el("tr", {}, ["Stage", "State", "Attempts", "Started", "Took", "Error"].map((h) => el("th", {}, h)))),
    el("tbody", {}, (view.stages || []).map((s) => el("tr", { "data-stage": s.stage },
      el("td", {}, s.stage), el("td", {}, badge(s.state)), el("td", {}, s.attempts),
      el("td", {}, when(s.started_at)), el("td", {}, s.duration_ms != null ? `${s.duration_ms} ms` : ""),
      el("td", { class: "error" }, s.error ? `${s.error.kind}: ${s.error.message}` : "")))));
  const cancellable = view.state !== "done" && view.state !== "cancelled";
  return [el("h2", {}, "Task ", el("span", { class: "mono" }, view.task_id)), facts,
    cancellable ? cancelForm(view, onCancelled) : null,
    el("h2", { style: "margin-top:1rem" }, "Stages"), stages].filter(Boolean);
}

function eventsTable(events) {
  const detail = (e) => {
    if (e.error) return `${e.error.kind}: ${e.error.message}`;
    if (e.kind === "succeeded") return e.duration_ms != null ? `${e.duration_ms} ms` : "";
    if (e.kind === "received") return (e.documents || []).map((d) => d.filename).join(", ");
    if (e.kind === "completed" && e.summary) return e.summary.key;
    if (e.kind === "cancelled") return `by ${e.by}` + (e.reason ? `: ${e.reason}` : "");
    if (e.kind === "dropped") return "dropped: the task is cancelled";
    return "";
  };
  return [el("h2", {}, "Events"), el("table", {},
    el("thead", {}, el("tr", {}, ["Time", "Stage", "Attempt", "Event", "Detail"].map((h) => el("th", {}, h)))),
    el("tbody", {}, events.map((e) => el("tr", { "data-kind": e.kind },
      el("td", {}, when(e.at)), el("td", {}, e.stage), el("td", {}, e.attempt), el("td", {}, e.kind),
      el("td", { class: e.error ? "error" : "" }, detail(e))))))];
}

function summaryTable(summary) {
  const fields = Object.entries(summary.fields || {});
  if (!fields.length) return [el("h2", {}, "Summary"), el("p", { class: "muted" }, "No field was found in the documents.")];
  const render = (value) => typeof value === "string" ? value : JSON.stringify(value);
  return [el("h2", {}, "Summary"), el("table", { id: "summary" },
    el("thead", {}, el("tr", {}, ["Field", "Value", "Normalised", "Evidence"].map((h) => el("th", {}, h)))),
    el("tbody", {}, fields.map(([name, field]) => el("tr", { "data-field": name },
      el("td", {}, name),
      el("td", {}, render(field.value)),
      el("td", { class: "mono" }, field.normalized == null ? "" : render(field.normalized)),
      el("td", {}, field.evidence ? [
        el("div", { class: "muted" }, field.evidence.section || "", field.evidence.page ? ` (p. ${field.evidence.page})` : ""),
        el("blockquote", { class: "quote" }, field.evidence.quote || "")] : "")))))];
}

// ---- dead letters --------------------------------------------------------

function deadLettersPage() {
  const filter = el("select", { id: "dlq-stage" }, el("option", { value: "" }, "every stage"),
    STAGES.map((s) => el("option", { value: s }, s)));
  const result = el("div", { id: "replay-result", class: "message" });
  const body = el("tbody", { id: "dead-letters" });
  const refresh = el("button", { class: "secondary", type: "button", id: "dlq-refresh" }, "Refresh");
  setMain(el("section", {},
    el("div", { class: "row" }, el("h2", {}, "Dead letters"), filter, refresh),
    el("table", {},
      el("thead", {}, el("tr", {}, ["Task", "Stage", "Documents", "Error", "Attempts", "Last failure", ""].map((h) => el("th", {}, h)))),
      body),
    result));
  let stopped = false;
  const load = async () => {
    try {
      const stage = filter.value;
      const listing = await api(`/v1/dead-letters${stage ? `?stage=${stage}` : ""}`);
      if (stopped) return;
      body.replaceChildren(...listing.dead_letters.map((letter) => deadLetterRow(letter, result, load)));
      if (!listing.dead_letters.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No dead letters.")));
    } catch (error) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "error" }, `could not list: ${error.message}`)));
    }
  };
  filter.addEventListener("change", load);
  refresh.addEventListener("click", load);
  load();
  return () => { stopped = true; };
}

function deadLetterRow(letter, result, reload) {
  const replay = el("button", { class: "replay", type: "button", disabled: !letter.replayable || !letter.task_id,
    title: letter.replayable ? "Put it back on its stage's queue" : "Not a valid message: it cannot be replayed" }, "Replay");
  replay.addEventListener("click", async () => {
    replay.disabled = true;
    result.replaceChildren("Replaying…");
    try {
      const report = await api("/v1/dead-letters/replay", {
        method: "POST",
        headers: { "Content-Type": "application/json", ...authHeaders() },
        body: JSON.stringify({ stage: letter.stage, task_ids: [letter.task_id] }),
      });
      if (report.replayed.includes(letter.task_id)) {
        result.replaceChildren(el("span", { class: "ok", "data-replayed": letter.task_id }, `Replayed ${letter.task_id} to ${letter.stage}.`));
      } else {
        const why = report.skipped.map((s) => s.reason).join("; ") || "not found in the queue";
        result.replaceChildren(el("span", { class: "error" }, `Not replayed: ${why}`));
      }
    } catch (error) {
      result.replaceChildren(el("span", { class: "error" }, `Not replayed: ${error.message}`));
    }
    reload();
  });
  return el("tr", { "data-task-id": letter.task_id || "", "data-stage": letter.stage },
    el("td", {}, letter.task_id ? el("a", { href: `#/tasks/${letter.task_id}`, class: "mono" }, letter.task_id) : el("span", { class: "muted" }, "(no task)")),
    el("td", {}, letter.stage),
    el("td", {}, (letter.filenames || []).join(", ")),
    el("td", { class: "error" }, `${letter.error_kind}: ${letter.error_message}`),
    el("td", {}, letter.attempts),
    el("td", {}, when(letter.last_failure_at)),
    el("td", {}, replay));
}

// ---- upcoming deadlines --------------------------------------------------

// The done tasks whose bid deadline is still ahead (the API's deadline
// filter), with their deadline and opening, soonest first. A relative time
// ("开标前3个工作日") has no date and is not listed; the calendar feed has the
// same events for a calendar application to subscribe to.
function deadlinesPage() {
  const status = el("span", { class: "muted", id: "deadlines-status" });
  const body = el("tbody", { id: "deadlines" });
  setMain(el("section", {},
    el("div", { class: "row" }, el("h2", {}, "Upcoming deadlines"), status),
    el("p", { class: "muted" }, "Bid deadlines and openings of done tasks, soonest first. Subscribe a calendar to ",
      el("a", { href: "/v1/calendar.ics", id: "calendar-link" }, "/v1/calendar.ics"),
      " (add ?token=… when a token is set)."),
    el("table", {},
      el("thead", {}, el("tr", {}, ["When", "What", "Project", "Tender no.", "Place", "Task"].map((h) => el("th", {}, h)))),
      body)));
  let stopped = false;
  (async () => {
    try {
      const now = new Date().toISOString();
      const page = await api(`/v1/tasks?state=done&limit=100&deadline_after=${encodeURIComponent(now)}`);
      const rows = [];
      for (const view of page.tasks) {
        const summary = await api(`/v1/tasks/${view.task_id}/summary`);
        const fields = summary.fields || {};
        const text = (id) => (fields[id] ? fields[id].value : "");
        for (const [id, what, place] of [["deadline_bid", "bid deadline", "submission_place"], ["opening_time", "opening", "opening_place"]]) {
          const field = fields[id];
          const at = field && typeof field.normalized === "string" ? new Date(field.normalized) : null;
          if (!at || isNaN(at) || at < new Date(now)) continue;
          rows.push({ at, id, what, field, task: view.task_id, project: text("project"), number: text("tender_no"), place: text(place) || text("opening_place") });
        }
      }
      if (stopped) return;
      rows.sort((a, b) => a.at - b.at);
      body.replaceChildren(...rows.map((r) => el("tr", { "data-task-id": r.task, "data-kind": r.id },
        el("td", {}, el("div", {}, r.at.toLocaleString()), el("div", { class: "muted" }, r.field.value)),
        el("td", {}, r.what),
        el("td", {}, r.project),
        el("td", { class: "mono" }, r.number),
        el("td", {}, r.place),
        el("td", {}, el("a", { href: `#/tasks/${r.task}`, class: "mono" }, r.task)))));
      if (!rows.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No deadline ahead.")));
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      status.textContent = `could not load the deadlines: ${error.message}`;
    }
  })();
  return () => { stopped = true; };
}

// ---- routing -------------------------------------------------------------

function route() {
  stopPage();
  const hash = location.hash || "#/";
  const task = hash.match(/^#\/tasks\/([0-9a-fA-F-]{36})$/);
  let nav = "tasks";
  if (task) stopPage = taskPage(task[1]);
  else if (hash === "#/dead-letters") { stopPage = deadLettersPage(); nav = "dead-letters"; }
  else if (hash === "#/deadlines") { stopPage = deadlinesPage(); nav = "deadlines"; }
  else stopPage = tasksPage();
  for (const link of document.querySelectorAll("nav a[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === nav && !task);
  }
}

const tokenInput = document.getElementById("token");
tokenInput.value = token();
tokenInput.addEventListener("change", () => localStorage.setItem("tenderflow-token", tokenInput.value));
window.addEventListener("hashchange", route);
route();
