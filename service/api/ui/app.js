// The seq2seq-serve web page: plain JavaScript against this server's own routes.
"use strict";

const KEY_STORE = "s2s-api-key";
const $ = (id) => document.getElementById(id);

const state = {
  names: {}, // language code -> name
  pairs: {}, // source code -> reachable target codes
  maxChars: 0,
  keyRequired: false,
  chat: [], // {role, content} turns sent to the server
  chatAbort: null,
};

// ---- HTTP ------------------------------------------------------------------------------
function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: "Bearer " + key } : {};
}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// A readable sentence for an error response (status, the JSON body's error, headers).
function describe(status, error, headers) {
  const message = (error && error.message) || "";
  const type = (error && error.type) || "";
  const retry = headers && headers.get("Retry-After");
  const wait = retry ? ` Try again in ${retry} s.` : " Try again shortly.";
  switch (status) {
    case 401:
      return "This server needs an API key: enter it above.";
    case 403:
      return "The API key was refused.";
    case 404:
      return `Not found: ${message}`;
    case 413:
      return `Too large for this server: ${message}.`;
    case 415:
    case 422:
      return `The server could not accept this request: ${message}.`;
    case 429:
      return `The server is busy (${type || "rate limited"}): ${message}.${wait}`;
    case 503:
      if (type === "draining") return "The server is shutting down and takes no new work." + wait;
      if (type === "not_ready") return "The model is still loading." + wait;
      return `The model is unavailable: ${message}.${wait}`;
    case 504:
      return `The request took too long: ${message}.`;
    default:
      return `The server answered ${status}${message ? ": " + message : ""}.`;
  }
}

async function failure(response) {
  let error = null;
  try {
    error = (await response.json()).error;
  } catch (_) {
    // not JSON: the status alone tells
  }
  if (response.status === 401) showKeyBox(true);
  return new ApiError(describe(response.status, error, response.headers), response.status);
}

async function api(path, body, signal) {
  const init = { headers: authHeaders(), signal };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError("Could not reach the server.", 0);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

async function getJson(path) {
  return (await api(path)).json();
}

function showError(id, error) {
  const box = $(id);
  box.textContent = error ? error.message || String(error) : "";
  box.hidden = !error;
}

function busy(button, on) {
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
}

// ---- API key ---------------------------------------------------------------------------
function showKeyBox(needed) {
  $("key-box").hidden = !needed;
  if (needed && !sessionStorage.getItem(KEY_STORE)) {
    $("key-box").classList.remove("compact");
    $("key-status").textContent = "No key entered yet.";
  }
}

function setupKey() {
  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $("api-key").value = "";
    $("key-status").textContent = "Checking the key…";
    try {
      await loadModels();
      $("key-status").textContent = "Key accepted for this tab.";
      $("key-box").classList.add("compact");
    } catch (e) {
      if (e.status === 401) sessionStorage.removeItem(KEY_STORE);
      $("key-status").textContent = e.status === 401 ? "That key was refused." : e.message;
    }
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    $("key-box").classList.remove("compact");
    $("key-status").textContent = "Key forgotten.";
  });
}

// ---- tabs ------------------------------------------------------------------------------
function setupTabs() {
  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (tab.id === "tab-models") loadModels().catch((e) => showError("models-error", e));
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      select(next);
    });
  });
}

// Ctrl+Enter (Cmd+Enter) in a form submits it.
function submitOnCtrlEnter(form) {
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

// ---- server state and models ---------------------------------------------------------
async function loadReady() {
  const el = $("server-state");
  try {
    const response = await fetch("/ready");
    const body = await response.json();
    const models = Object.entries(body.models || {});
    const loaded = models.filter(([, m]) => m.state === "ready").length;
    if (body.draining) {
      el.textContent = "Server shutting down (draining)";
      el.dataset.state = "draining";
    } else {
      el.textContent = `${body.ready ? "Ready" : "Not ready"}: ${loaded} of ${models.length} models loaded`;
      el.dataset.state = body.ready ? "ready" : "loading";
    }
  } catch (_) {
    el.textContent = "Server unreachable";
    el.dataset.state = "down";
  }
}

function text(tag, content, cls) {
  const el = document.createElement(tag);
  if (content !== undefined && content !== null) el.textContent = content;
  if (cls) el.className = cls;
  return el;
}

function languageList(codes) {
  return codes.length ? codes.map((c) => state.names[c] || c).join(", ") : "any";
}

async function loadModels() {
  const body = await getJson("/models");
  const list = $("models-list");
  list.replaceChildren();
  const chat = $("chat-model");
  const chosen = chat.value;
  chat.replaceChildren();
  for (const m of body.models) {
    const card = text("article", null, "model");
    card.append(text("h3", m.name));
    const facts = document.createElement("dl");
    const fact = (label, value) => {
      if (value === undefined || value === null || value === "") return;
      facts.append(text("dt", label), text("dd", String(value)));
    };
    fact("Task", m.task);
    fact("State", m.reason ? `${m.state} (${m.reason})` : m.state);
    fact("Family", m.family);
    fact("Languages", `${languageList(m.languages.source)} → ${languageList(m.languages.target)}`);
    fact("Licence", m.license);
    fact("Precision", m.precision);
    fact("Provider", m.provider);
    fact("Batching", m.batching && m.batching.mode);
    card.append(facts);
    if (m.description) card.append(text("p", m.description, "desc"));
    list.append(card);
    if (m.task === "chat" && m.state === "ready") chat.append(new Option(m.name, m.name));
  }
  if (chosen) chat.value = chosen;
  showError("models-error", null);
  return body.models;
}

// ---- translate -------------------------------------------------------------------------
const name = (code) => state.names[code] || code;

function targetsOf(source) {
  if (source !== "auto") return state.pairs[source] || [];
  return [...new Set(Object.values(state.pairs).flat())].sort();
}

function fillTargets(wanted) {
  const target = $("tr-target");
  const previous = wanted || target.value;
  const targets = targetsOf($("tr-source").value);
  target.replaceChildren(...targets.map((c) => new Option(name(c), c)));
  if (targets.includes(previous)) target.value = previous;
  updateSwap();
}

// Swap needs a concrete source (or a detected one) and a model for the reverse pair.
function swapSource() {
  const source = $("tr-source").value;
  return source === "auto" ? $("tr-detected").dataset.language || "" : source;
}

function updateSwap() {
  const source = swapSource();
  const target = $("tr-target").value;
  const ok = Boolean(source && target && (state.pairs[target] || []).includes(source));
  const swap = $("tr-swap");
  swap.disabled = !ok;
  swap.title = ok ? "Swap languages" : "No model translates the other way";
}

function updateCount() {
  const length = $("tr-input").value.length;
  const count = $("tr-count");
  count.textContent = state.maxChars
    ? `${length} / ${state.maxChars} characters`
    : `${length} characters`;
  const over = state.maxChars && length > state.maxChars;
  count.classList.toggle("over", Boolean(over));
  if (over) count.textContent += " (over the server's limit)";
}

async function loadLanguages() {
  const [languages, settings] = await Promise.all([
    getJson("/libretranslate/languages"),
    getJson("/libretranslate/frontend/settings"),
  ]);
  state.maxChars = settings.charLimit;
  state.keyRequired = settings.keyRequired;
  for (const l of languages) {
    state.names[l.code] = l.name;
    if (l.targets.length) state.pairs[l.code] = l.targets;
  }
  const source = $("tr-source");
  for (const code of Object.keys(state.pairs)) source.append(new Option(name(code), code));
  fillTargets();
  updateCount();
  showKeyBox(state.keyRequired);
}

function setupTranslate() {
  const form = $("tr-form");
  submitOnCtrlEnter(form);
  $("tr-source").addEventListener("change", () => {
    $("tr-detected").textContent = "";
    delete $("tr-detected").dataset.language;
    fillTargets();
  });
  $("tr-target").addEventListener("change", updateSwap);
  $("tr-input").addEventListener("input", updateCount);
  $("tr-swap").addEventListener("click", () => {
    const source = swapSource();
    const target = $("tr-target").value;
    $("tr-source").value = target;
    $("tr-detected").textContent = "";
    delete $("tr-detected").dataset.language;
    fillTargets(source);
    const output = $("tr-output").value;
    if (output) {
      $("tr-input").value = output;
      $("tr-output").value = "";
      updateCount();
    }
  });
  $("tr-copy").addEventListener("click", async () => {
    const output = $("tr-output");
    try {
      await navigator.clipboard.writeText(output.value);
    } catch (_) {
      output.select();
      document.execCommand("copy");
    }
    $("tr-model").dataset.copied = "true";
    $("tr-copy").textContent = "Copied";
    setTimeout(() => ($("tr-copy").textContent = "Copy translation"), 1500);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("tr-input").value;
    if (!input.trim()) return;
    const source = $("tr-source").value;
    const body = {
      text: input,
      source_lang: source,
      target_lang: $("tr-target").value,
      format: $("tr-html").checked ? "html" : "text",
    };
    const go = $("tr-go");
    busy(go, true);
    showError("tr-error", null);
    try {
      const answer = await (await api("/translate", body)).json();
      $("tr-output").value = answer.translations[0];
      $("tr-model").textContent = `Model: ${answer.model}`;
      const detected = answer.detected_languages && answer.detected_languages[0];
      const shown = $("tr-detected");
      if (source === "auto" && detected) {
        const percent = Math.round(detected.confidence * 100);
        shown.textContent = `Detected: ${name(detected.language)} (${percent}% confidence)`;
        shown.dataset.language = detected.language;
      }
      updateSwap();
    } catch (e) {
      showError("tr-error", e);
    } finally {
      busy(go, false);
    }
  });
}

// ---- summarize -------------------------------------------------------------------------
const SAMPLE_DIALOGUE = [
  "Anna: Are we still meeting at the station at six?",
  "Ben: Yes, but my train is late. Can we say half past six?",
  "Anna: Fine. I will wait in the café by platform two.",
  "Ben: Great, I will bring the tickets for the concert.",
].join("\n");

function setupSummarize() {
  const form = $("sum-form");
  submitOnCtrlEnter(form);
  $("sum-input").value = SAMPLE_DIALOGUE;
  $("sum-sample").addEventListener("click", () => ($("sum-input").value = SAMPLE_DIALOGUE));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("sum-input").value;
    if (!input.trim()) return;
    const go = $("sum-go");
    busy(go, true);
    showError("sum-error", null);
    try {
      const answer = await (await api("/summarize", { text: input })).json();
      const summary = answer.summaries[0];
      $("sum-output").value = summary;
      $("sum-lengths").textContent =
        `Input ${input.length} characters, summary ${summary.length} characters ` +
        `(model ${answer.model}).`;
    } catch (e) {
      showError("sum-error", e);
    } finally {
      busy(go, false);
    }
  });
}

// ---- chat ------------------------------------------------------------------------------
function addTurn(role, content) {
  const item = text("li", null, "turn " + role);
  item.append(text("span", role === "user" ? "You" : "Model", "who"));
  const body = text("p", content, "said");
  item.append(body);
  $("chat-log").append(item);
  item.scrollIntoView({ block: "end" });
  return body;
}

// Yields every JSON event of an OpenAI-style SSE stream ("data: {...}" lines).
async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const blocks = buffer.split(/\r?\n\r?\n/);
    buffer = blocks.pop();
    for (const block of blocks) {
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trim())
        .join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

function setupChat() {
  const form = $("chat-form");
  submitOnCtrlEnter(form);
  $("chat-stop").addEventListener("click", () => state.chatAbort && state.chatAbort.abort());
  $("chat-clear").addEventListener("click", () => {
    if (state.chatAbort) state.chatAbort.abort();
    state.chat = [];
    $("chat-log").replaceChildren();
    showError("chat-error", null);
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = $("chat-input").value.trim();
    const model = $("chat-model").value;
    if (!message || state.chatAbort) return;
    if (!model) {
      showError("chat-error", new Error("No chat model is ready on this server."));
      return;
    }
    showError("chat-error", null);
    $("chat-input").value = "";
    addTurn("user", message);
    const messages = [...state.chat, { role: "user", content: message }];
    const reply = addTurn("assistant", "");
    reply.parentElement.setAttribute("aria-busy", "true");
    // Screen readers announce the reply once it is complete, not every streamed piece.
    $("chat-log").setAttribute("aria-busy", "true");
    let pieces = 0;
    const controller = new AbortController();
    state.chatAbort = controller;
    busy($("chat-send"), true);
    $("chat-stop").disabled = false;
    let stopped = false;
    try {
      const response = await api(
        "/v1/chat/completions",
        { model, messages, stream: true },
        controller.signal,
      );
      for await (const event of sseEvents(response)) {
        if (event.error) {
          const { type, message } = event.error;
          throw new ApiError(`The reply stopped with an error (${type}): ${message}.`, 0);
        }
        const delta = event.choices && event.choices[0] && event.choices[0].delta;
        if (delta && delta.content) {
          reply.textContent += delta.content;
          pieces += 1;
          reply.dataset.pieces = String(pieces);
        }
      }
    } catch (e) {
      if (e.name === "AbortError") stopped = true;
      else showError("chat-error", e);
    } finally {
      state.chatAbort = null;
      reply.parentElement.removeAttribute("aria-busy");
      $("chat-log").removeAttribute("aria-busy");
      busy($("chat-send"), false);
      $("chat-stop").disabled = true;
    }
    if (stopped) reply.parentElement.append(text("span", "stopped", "stopped"));
    if (reply.textContent) {
      state.chat = [...messages, { role: "assistant", content: reply.textContent }];
    } else if (!stopped) {
      state.chat = messages.slice(0, -1);
    } else {
      state.chat = messages;
      reply.textContent = "…";
    }
    $("chat-input").focus();
  });
}

// ---- start -----------------------------------------------------------------------------
async function start() {
  setupTabs();
  setupKey();
  setupTranslate();
  setupSummarize();
  setupChat();
  $("models-refresh").addEventListener("click", () =>
    loadModels().catch((e) => showError("models-error", e)),
  );
  loadReady();
  setInterval(loadReady, 10000);
  try {
    await loadLanguages();
  } catch (e) {
    showError("tr-error", e);
  }
  loadModels()
    .then(() => {
      if (!sessionStorage.getItem(KEY_STORE)) return;
      $("key-status").textContent = "Key in use for this tab.";
      $("key-box").classList.add("compact");
    })
    .catch((e) => {
      if (e.status !== 401) showError("models-error", e);
    });
}

document.addEventListener("DOMContentLoaded", start);
