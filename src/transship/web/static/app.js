// transship ui: one page, no build step. Talks to the JSON API of `transship ui`,
// follows a job's events over Server-Sent Events, renders strings from /i18n/<lang>.json.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const LOG_LINES_KEPT = 5000;
  const KINDS = ["check", "copy", "save", "load", "analyze"];

  const state = {
    token: "",
    lang: "en",
    messages: {},
    registries: [],
    features: {},
    defaults: {},
    configFile: "",
    job: null, // {id, kind}
    source: null, // EventSource of the job followed
    failures: [],
    logEntries: [], // {cls, text: () => string, time, detail}: re-rendered on a language switch
    history: [],
    lastStats: null,
    cancelling: false,
  };

  // -- i18n -----------------------------------------------------------------------------------
  function t(key, fields) {
    const template = state.messages[key] ?? key;
    if (!fields) return template;
    return template.replace(/\{(\w+)\}/g, (whole, name) =>
      Object.prototype.hasOwnProperty.call(fields, name) ? String(fields[name]) : whole,
    );
  }

  function pickLanguage(configLang) {
    const fromUrl = new URLSearchParams(location.search).get("lang");
    const stored = localStorage.getItem("transship.lang");
    const browser = (navigator.languages && navigator.languages[0]) || navigator.language || "";
    for (const candidate of [fromUrl, stored, configLang, browser]) {
      if (candidate) return candidate.toLowerCase().startsWith("zh") ? "zh" : "en";
    }
    return "en";
  }

  async function setLanguage(lang, remember) {
    const response = await fetch(`/i18n/${lang}.json`);
    if (!response.ok) return;
    const body = await response.json();
    state.lang = lang;
    state.messages = body.messages;
    if (remember) localStorage.setItem("transship.lang", lang);
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    applyMessages();
  }

  function applyMessages() {
    for (const el of document.querySelectorAll("[data-i18n]")) {
      el.textContent = t(el.dataset.i18n);
    }
    for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    }
    for (const el of document.querySelectorAll("[data-i18n-title]")) {
      el.title = t(el.dataset.i18nTitle);
    }
    for (const el of document.querySelectorAll("[data-i18n-empty]")) {
      el.dataset.empty = t(el.dataset.i18nEmpty); // shown by CSS while the element is empty
    }
    for (const button of document.querySelectorAll(".lang-btn")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === state.lang));
    }
    document.title = t("web.title");
    fillRegistries();
    renderFeatures();
    renderStatus();
    if (state.lastStats) renderStats(state.lastStats);
    renderFailures();
    renderLog();
    renderHistory();
  }

  // -- formatting ---------------------------------------------------------------------------
  function bytes(n) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = Number(n) || 0;
    let unit = 0;
    while (Math.abs(value) >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return unit === 0 ? `${value.toFixed(0)} B` : `${value.toFixed(1)} ${units[unit]}`;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(Number(seconds) || 0));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = s % 60;
    const two = (x) => String(x).padStart(2, "0");
    return h ? `${h}:${two(m)}:${two(rest)}` : `${m}:${two(rest)}`;
  }

  function clock(epochSeconds) {
    const d = epochSeconds ? new Date(epochSeconds * 1000) : new Date();
    return d.toLocaleTimeString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
  }

  const shortDigest = (digest) => (digest || "").replace(/^sha256:/, "").slice(0, 12);

  // -- API ----------------------------------------------------------------------------------------
  async function api(path, options = {}) {
    const headers = { "X-Transship-Token": state.token, ...(options.headers || {}) };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: "same-origin",
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      const error = new Error((body && body.error) || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function showBanner(text) {
    const banner = $("banner");
    banner.textContent = text;
    banner.hidden = !text;
  }

  // -- registries and features ------------------------------------------------------------------
  async function loadRegistries() {
    const body = await api("/api/registries");
    state.registries = body.registries;
    state.features = body.features;
    state.defaults = body.defaults;
    state.configFile = body.config_file;
    if (!$("maxconn").value) $("maxconn").value = body.defaults.maxconn;
    if (!$("retries").value) $("retries").value = body.defaults.retries;
    return body;
  }

  function option(value, label) {
    const el = document.createElement("option");
    el.value = value;
    el.textContent = label;
    return el;
  }

  function fillRegistries() {
    for (const [id, placeholder] of [
      ["source", "web.form.source_from_list"],
      ["target", "web.form.choose"],
    ]) {
      const select = $(id);
      const current = select.value || localStorage.getItem(`transship.${id}`) || "";
      select.replaceChildren(option("", t(placeholder)));
      for (const reg of state.registries) {
        const label = reg.rewrite ? `${reg.name} — ${reg.host} (→ ${reg.rewrite}/…)` : `${reg.name} — ${reg.host}`;
        select.append(option(reg.name, label));
      }
      if ([...select.options].some((o) => o.value === current)) select.value = current;
    }
    const none = $("no-registries");
    none.hidden = state.registries.length > 0;
    none.textContent = t("web.form.no_registries", { file: state.configFile || "transship.yaml" });
    $("config-file").textContent = state.configFile ? t("web.form.config_file", { file: state.configFile }) : "";
  }

  function renderFeatures() {
    const byNote = new Map(); // one line per reason: "Save bundle, Load bundle: ..."
    for (const kind of KINDS) {
      const feature = state.features[kind];
      const button = $(`btn-${kind}`);
      const available = !feature || feature.available;
      button.dataset.available = String(available);
      if (available) continue;
      const key = `web.feature.${feature.code}`;
      const note = feature.code && state.messages[key] ? t(key) : feature.note;
      byNote.set(note, [...(byNote.get(note) || []), t(`web.action.${kind}`)]);
    }
    const lines = [...byNote].map(([note, actions]) => t("web.action.unavailable", { action: actions.join(state.lang === "zh" ? "、" : ", "), note }));
    $("feature-notes").textContent = lines.join(" ");
    updateButtons();
  }

  function updateButtons() {
    const running = Boolean(state.job && state.job.running);
    for (const kind of KINDS) {
      const button = $(`btn-${kind}`);
      button.disabled = running || button.dataset.available === "false";
    }
    $("btn-cancel").disabled = !running || state.cancelling;
    $("contents").disabled = $("btn-save").dataset.available === "false";
  }

  // -- starting and following jobs ------------------------------------------------------------------
  function formRequest(kind) {
    const platform = $("platform").value.trim();
    const request = {
      source: $("source").value || null,
      target: $("target").value || null,
      images: $("images").value,
      maxconn: Number($("maxconn").value) || null,
      retries: $("retries").value === "" ? null : Number($("retries").value),
      platforms: platform ? platform.split(/[\s,]+/).filter(Boolean) : [],
    };
    if (kind === "save" || kind === "load") request.bundle = $("bundle").value.trim() || null;
    if (kind === "save") {
      // "dedup:balanced" -> codec dedup, effort balanced (as `transship save --codec --dedup-effort`)
      const [codec, effort] = $("contents").value.split(":");
      request.codec = codec;
      if (effort) request.dedup_effort = effort;
    }
    return request;
  }

  function validate(kind, request) {
    const needsList = kind !== "load";
    if (needsList && !request.images.split("\n").some((l) => l.trim() && !l.trim().startsWith("#"))) {
      return t("web.error.empty_list");
    }
    if ((kind === "check" || kind === "copy" || kind === "load") && !request.target) return t("web.error.no_target");
    if ((kind === "save" || kind === "load") && !request.bundle) return t("web.error.no_bundle");
    return "";
  }

  async function start(kind) {
    const request = formRequest(kind);
    const problem = validate(kind, request);
    if (problem) {
      showBanner(problem);
      return;
    }
    showBanner("");
    localStorage.setItem("transship.source", $("source").value);
    localStorage.setItem("transship.target", $("target").value);
    if (kind === "save") localStorage.setItem("transship.contents", $("contents").value);
    try {
      const body = await api(`/api/${kind}`, { method: "POST", body: request });
      follow(body.job, kind, true);
    } catch (error) {
      showBanner(t("web.error.server", { error: error.message }));
    }
  }

  function resetView() {
    $("report-link").hidden = true;
    state.logEntries = [];
    renderLog();
    state.failures = [];
    state.lastStats = null;
    renderFailures();
    renderStats({ total: 0, invalid: 0, success: 0, failed: 0, remaining: 0, running: false });
  }

  function follow(id, kind, running) {
    if (state.source) state.source.close();
    state.job = { id, kind, running, status: running ? "running" : "", error: "" };
    $("metrics").hidden = kind === "check" || kind === "analyze"; // they move no bytes
    state.cancelling = false;
    resetView();
    renderStatus();
    updateButtons();
    const url = `/api/jobs/${encodeURIComponent(id)}/events?token=${encodeURIComponent(state.token)}`;
    const source = new EventSource(url);
    state.source = source;
    source.onmessage = (message) => onEvent(JSON.parse(message.data));
    source.addEventListener("stats", (message) => renderStats(JSON.parse(message.data)));
    source.addEventListener("end", (message) => {
      source.close();
      const summary = JSON.parse(message.data);
      Object.assign(state.job, { running: false, status: summary.status, error: summary.error });
      renderStats(summary.stats);
      renderStatus();
      updateButtons();
      // Show the outcome in the history at once; the server's list follows.
      state.history = state.history.map((job) => (job.id === summary.id ? summary : job));
      renderHistory();
      refreshHistory();
    });
    source.onerror = () => {
      // The browser reconnects by itself (resuming after the last event id); say so meanwhile.
      if (source.readyState === EventSource.CLOSED) showBanner(t("web.error.connection"));
    };
    refreshHistory();
  }

  async function cancel() {
    if (!state.job) return;
    state.cancelling = true;
    updateButtons();
    renderStatus();
    log("warn", () => t("web.log.cancel_requested"));
    try {
      await api(`/api/jobs/${encodeURIComponent(state.job.id)}/cancel`, { method: "POST" });
    } catch (error) {
      showBanner(t("web.error.server", { error: error.message }));
    }
  }

  // -- events -> log, failures ------------------------------------------------------------------------
  function summaryLines(summary, lang) {
    if (!summary) return [];
    if (Array.isArray(summary)) return summary;
    return summary[lang] || summary.en || [];
  }

  function logLine(entry) {
    const line = document.createElement("div");
    const stamp = document.createElement("span");
    stamp.className = "time";
    stamp.textContent = `${clock(entry.time)} `;
    const body = document.createElement("span");
    body.className = entry.cls;
    body.textContent = entry.text();
    line.append(stamp, body);
    return line;
  }

  const shown = (entry) => !entry.detail || $("log-details").checked;

  // A line of the log; `text` is called again when the language changes.
  function log(cls, text, time, detail = false) {
    const entry = { cls, text, time: time || Date.now() / 1000, detail };
    state.logEntries.push(entry);
    if (state.logEntries.length > LOG_LINES_KEPT) {
      state.logEntries.shift();
      if (state.logEntries.length % 500 === 0) renderLog(); // now and then, drop old lines
    }
    if (!shown(entry)) return;
    const pane = $("log");
    const atBottom = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 8;
    pane.append(logLine(entry));
    if (atBottom) pane.scrollTop = pane.scrollHeight;
  }

  function renderLog() {
    const pane = $("log");
    pane.replaceChildren(...state.logEntries.filter(shown).map(logLine));
    pane.scrollTop = pane.scrollHeight;
  }

  function onEvent(e) {
    const at = e.time;
    switch (e.event) {
      case "RunStarted":
        log("info", () => t("web.log.run_started", { images: e.images }), at);
        break;
      case "ImagePlanned":
        log("dim", () => t("web.log.image_planned", { image: e.image, blobs: e.blobs, size: bytes(e.bytes) }), at, true);
        break;
      case "ImageDone":
        log("ok", () => t(e.target ? "web.log.image_done" : "web.log.image_done_here", { image: e.image, target: e.target, digest: shortDigest(e.digest) }), at);
        for (const note of e.notes || []) log("warn", () => t("web.log.note", { image: e.image, note }), at);
        break;
      case "ImageFailed":
        log(e.invalid ? "warn" : "bad", () => t(e.invalid ? "web.log.image_invalid" : "web.log.image_failed", { image: e.image, reason: e.reason }), at);
        state.failures.push(e);
        renderFailures();
        break;
      case "BlobStarted":
        log("dim", () => t("web.log.blob_started", { digest: shortDigest(e.digest), size: bytes(e.size) }), at, true);
        break;
      case "BlobDone":
        log("dim", () => t("web.log.blob_done", { digest: shortDigest(e.digest), how: t(`web.log.how.${e.how}`), size: bytes(e.size) }), at, true);
        break;
      case "BlobRetry":
        log("warn", () => t("web.log.blob_retry", { digest: shortDigest(e.digest), attempt: e.attempt, reason: e.reason }), at);
        break;
      case "RunDone":
        log(e.failed || e.invalid ? "warn" : "ok", () => t("web.log.run_done", {
          ok: e.ok, failed: e.failed, invalid: e.invalid, sent: bytes(e.bytes_sent), seconds: duration(e.seconds),
          copied: e.blobs_copied, skipped: e.blobs_skipped, mounted: e.blobs_mounted,
        }), at);
        break;
      case "JobFailed":
        log("bad", () => t("web.log.job_failed", { reason: e.reason }), at);
        break;
      case "LayerScanned":
        log(e.error ? "warn" : "dim", () => t("web.log.layer_scanned", { done: e.done, total: e.total, digest: shortDigest(e.digest), size: bytes(e.size) }), at);
        break;
      case "Finishing":
        log("info", () => t("web.log.finishing", { what: e.key ? t(e.key, e.fields) : e.what }), at);
        break;
      case "BundleWritten":
        // The server sends the summary in every language ({en: [...], zh: [...]}); older
        // jobs have one list. Each line follows a language switch.
        summaryLines(e.summary, state.lang).forEach((_, i) => log("info", () => summaryLines(e.summary, state.lang)[i] || "", at));
        log("ok", () => t("web.log.bundle_written", { path: e.path }), at);
        break;
      case "ReportReady": {
        const link = $("report-link");
        link.href = `${e.url}?token=${encodeURIComponent(state.token)}`;
        link.hidden = false;
        log("info", () => t("web.log.report_ready"), at);
        break;
      }
      default:
        log("dim", () => JSON.stringify(e), at, true);
    }
  }

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function tag(text, className) {
    const span = document.createElement("span");
    span.className = `tag ${className}`;
    span.textContent = text;
    return span;
  }

  function renderFailures() {
    const body = $("failures").tBodies[0];
    body.replaceChildren();
    for (const f of state.failures) {
      const row = document.createElement("tr");
      const image = cell(f.image, "mono");
      if (f.target) {
        const sub = document.createElement("span");
        sub.className = "sub";
        sub.textContent = `→ ${f.target}`;
        image.append(sub);
      }
      const kind = document.createElement("td");
      kind.append(tag(t(f.invalid ? "web.failures.invalid" : "web.failures.failed"), f.invalid ? "invalid" : "failed"));
      row.append(image, kind, cell(f.reason));
      body.append(row);
    }
    $("failures-count").textContent = String(state.failures.length);
    $("failures-empty").hidden = state.failures.length > 0;
    $("failures-retry").disabled = state.failures.length === 0;
  }

  function retryFailures() {
    const images = [...new Set(state.failures.map((f) => f.image))];
    $("images").value = images.join("\n") + "\n";
    $("images").focus();
  }

  // -- statistics and status ------------------------------------------------------------------------------
  function renderStats(s) {
    state.lastStats = s;
    for (const key of ["total", "invalid", "success", "failed", "remaining"]) {
      $(`st-${key}`).textContent = String(s[key] ?? 0);
    }
    const done = (s.invalid || 0) + (s.success || 0) + (s.failed || 0);
    const pct = s.total ? Math.min(100, Math.floor((done / s.total) * 100)) : 0;
    $("progress-bar").style.width = `${pct}%`;
    $("progress-pct").textContent = `${pct}%`;
    const progress = $("progress");
    progress.setAttribute("aria-valuenow", String(pct));
    progress.classList.toggle("done", !s.running && s.total > 0 && !(s.failed || s.invalid));
    progress.classList.toggle("has-failures", Boolean(s.failed || s.invalid));
    const have = s.elapsed !== undefined;
    $("st-speed").textContent = have && s.running ? `${bytes(s.speed)}/s` : "–";
    $("st-average").textContent = have ? `${bytes(s.average_speed)}/s` : "–";
    $("st-sent").textContent = have ? bytes(s.bytes_sent) : "–";
    $("st-elapsed").textContent = have ? duration(s.elapsed) : "–";
    $("st-blobs").textContent = have
      ? t("web.stats.blobs", { copied: s.blobs_copied, skipped: s.blobs_skipped, mounted: s.blobs_mounted, active: s.blobs_active, retries: s.retries })
      : "–";
  }

  function renderStatus() {
    const el = $("status");
    const job = state.job;
    let cls = "idle";
    let text = t("web.status.idle");
    if (job && job.running) {
      cls = "running";
      text = state.cancelling ? t("web.status.cancelling") : t("web.status.running", { action: t(`web.action.${job.kind}`) });
    } else if (job && job.status) {
      cls = job.status;
      text = job.status === "failed" ? t("web.status.failed", { error: job.error }) : t(`web.status.${job.status}`);
      if (job.status === "finished" && state.lastStats && (state.lastStats.failed || state.lastStats.invalid)) {
        cls = "failed-some";
        text = t("web.status.finished_with_failures");
      }
    }
    el.className = `status ${cls}`;
    el.textContent = text;
  }

  // -- history ---------------------------------------------------------------------------------------
  async function refreshHistory() {
    if (!state.token) return;
    try {
      state.history = (await api("/api/jobs")).jobs;
    } catch {
      return;
    }
    renderHistory();
  }

  function renderHistory() {
    const tbody = $("history").tBodies[0];
    tbody.replaceChildren();
    for (const job of state.history) {
      const row = document.createElement("tr");
      row.className = "clickable" + (state.job && state.job.id === job.id ? " current" : "");
      row.title = t("web.history.open");
      const p = job.params || {};
      const from = p.source || (job.kind === "load" ? p.bundle : "") || "…";
      let to = p.target || (job.kind === "save" ? p.bundle : "");
      if (job.kind === "save" && p.codec === "dedup") {
        to += ` (${t(p.dedup_effort === "max" ? "web.history.dedup_max" : "web.history.dedup")})`;
      }
      const s = job.stats;
      const result = t("web.history.counts", { success: s.success, failed: s.failed, invalid: s.invalid, total: s.total });
      const status = document.createElement("td");
      status.append(tag(t(`web.job_status.${job.status}`), job.status));
      row.append(cell(clock(job.created)), cell(t(`web.action.${job.kind}`)), cell(to ? `${from} → ${to}` : from, "mono"), cell(result), status);
      row.addEventListener("click", () => follow(job.id, job.kind, job.status === "running"));
      tbody.append(row);
    }
    $("history-empty").hidden = state.history.length > 0;
  }

  // -- start-up ----------------------------------------------------------------------------------------
  async function main() {
    const params = new URLSearchParams(location.search);
    state.token = params.get("token") || sessionStorage.getItem("transship.token") || "";
    if (state.token) sessionStorage.setItem("transship.token", state.token);

    for (const button of document.querySelectorAll(".lang-btn")) {
      button.addEventListener("click", () => setLanguage(button.dataset.lang, true));
    }
    for (const kind of KINDS) $(`btn-${kind}`).addEventListener("click", () => start(kind));
    $("btn-cancel").addEventListener("click", cancel);
    $("log-clear").addEventListener("click", () => {
      state.logEntries = [];
      renderLog();
    });
    $("log-details").addEventListener("change", renderLog);
    $("failures-retry").addEventListener("click", retryFailures);
    const contents = localStorage.getItem("transship.contents");
    if ([...$("contents").options].some((o) => o.value === contents)) $("contents").value = contents;

    let configLang = "";
    let registriesError = null;
    if (state.token) {
      try {
        configLang = (await loadRegistries()).defaults.lang;
      } catch (error) {
        registriesError = error;
      }
    }
    await setLanguage(pickLanguage(configLang), false);
    if (!state.token || (registriesError && registriesError.status === 401)) {
      showBanner(t("web.token.missing"));
      for (const kind of KINDS) $(`btn-${kind}`).dataset.available = "false";
      updateButtons();
      return;
    }
    if (registriesError) showBanner(t("web.error.server", { error: registriesError.message }));
    // A job still running (page reloaded, or started elsewhere): follow it.
    await refreshHistory();
    const running = state.history.find((job) => job.status === "running");
    if (running) follow(running.id, running.kind, true);
  }

  document.addEventListener("DOMContentLoaded", main);
})();
