// Gateway playground: a sample front end for the Azure OpenAI gateway, meant to be copied.
//
// One ES module, no framework, no build step and no dependencies: everything a browser app needs to
// talk to the gateway is here and short enough to read: streaming with fetch + a small SSE parser,
// Stop with AbortController, OpenAI-shaped errors turned into plain words (Azure's content filter
// included), reasoning summaries and MCP tool calls shown as they stream, and an embedding job or
// an OpenAI Batch API batch submitted, polled and downloaded.
//
// The pure helpers (createSSEParser, describeError, retryAfterSeconds, jobProgress, ...) are
// exported and do not touch the DOM, so they can be lifted into any app (and are unit-tested in
// Node). The page wiring starts at "Page" below and only runs in a browser.

// ---------------------------------------------------------------------------------------------
// Server-sent events
// ---------------------------------------------------------------------------------------------

// Why hand-written: EventSource can only GET (no body, no headers such as x-functions-key), and a
// chat request is a POST. So we read the fetch body ourselves, and parsing SSE takes ~40 lines,
// far less than a dependency plus a bundler. It follows the WHATWG rules that matter here: CRLF,
// LF or CR line ends (split anywhere across network chunks), multi-line data, comments, and an
// unterminated last event is dropped (so a cut-off stream is noticed, not half-parsed).

/**
 * A push parser: feed it decoded text as it arrives, get back the complete events.
 * @returns {{push(text: string): {event: string, data: string, id?: string}[], end(): void}}
 */
export function createSSEParser() {
  let buffer = "";
  let event = "";
  let data = [];
  let id;
  let first = true;

  function line(text, out) {
    if (text === "") {
      if (data.length) out.push({ event: event || "message", data: data.join("\n"), ...(id !== undefined ? { id } : {}) });
      event = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return; // a comment (keep-alive)
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) id = value;
  }

  return {
    push(text) {
      if (first && text) {
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        first = false;
      }
      buffer += text;
      const out = [];
      const ends = /\r\n|\n|\r/g;
      let start = 0;
      let found;
      while ((found = ends.exec(buffer)) !== null) {
        // A lone CR at the very end may be the first half of a CRLF split across chunks.
        if (found[0] === "\r" && found.index === buffer.length - 1) break;
        line(buffer.slice(start, found.index), out);
        start = found.index + found[0].length;
      }
      buffer = buffer.slice(start);
      return out;
    },
    end() {
      buffer = "";
      event = "";
      data = [];
    },
  };
}

/**
 * Events of a streamed fetch body, as they arrive.
 * @param {ReadableStream<Uint8Array>} body
 */
export async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = createSSEParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(value);
    }
  } finally {
    // Stop reading (after [DONE], an error event or Stop): frees the connection at once.
    parser.end();
    reader.cancel().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Errors in plain words
// ---------------------------------------------------------------------------------------------

/** An HTTP error answer from the gateway (OpenAI shape: {"error": {message, type, param, code}}). */
export class GatewayProblem extends Error {
  constructor({ status = 0, error = {}, headers = {}, kind = "http", url = "", requestId = "" } = {}) {
    super(error.message || `HTTP ${status}`);
    this.name = "GatewayProblem";
    this.kind = kind; // "http" | "stream" | "truncated" | "unreachable" | "refused" | "gateway" | "filtered"
    this.status = status;
    this.error = error;
    this.headers = headers;
    this.url = url;
    this.requestId = requestId;
  }
}

/**
 * Seconds to wait, from retry-after-ms (exact, Azure) or retry-after (seconds or an HTTP date).
 * @param {Record<string, string>} headers lower-case names
 * @param {number} now milliseconds since the epoch
 */
export function retryAfterSeconds(headers, now = Date.now()) {
  const ms = Number.parseFloat(headers["retry-after-ms"] ?? "");
  if (Number.isFinite(ms) && ms >= 0) return Math.max(1, Math.ceil(ms / 1000));
  const raw = headers["retry-after"];
  if (raw === undefined || raw === "") return null;
  const seconds = Number(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.max(1, Math.ceil(seconds));
  const date = Date.parse(raw);
  return Number.isNaN(date) ? null : Math.max(1, Math.ceil((date - now) / 1000));
}

function quoted(text) {
  return text ? `: ${text}` : ".";
}

/**
 * What to tell the user about a failure: a short title in plain words, optional detail, and how
 * long to wait before retrying (rate limits).
 * @param {GatewayProblem} problem
 * @param {{origin?: string, model?: string, models?: string[], hasKey?: boolean}} context
 * @returns {{title: string, detail: string, retryAfter: number | null}}
 */
export function describeError(problem, context = {}) {
  const { status, error = {}, kind } = problem;
  const code = String(error.code ?? "");
  const message = error.message || "";
  const result = (title, detail = "", retryAfter = null) => ({ title, detail, retryAfter });

  if (kind === "unreachable") {
    return result(`Can't reach the gateway at ${problem.url || "that address"}.`,
      "Check the Gateway URL above and that the gateway is running.");
  }
  if (kind === "refused") {
    const keyHint = context.hasKey ? "" : " In Azure, also check the function key.";
    return result(`Not allowed: the gateway refused calls from this page's origin (${context.origin || "unknown"}).`,
      `Ask for it to be added to the gateway's CORS_ALLOWED_ORIGINS setting.${keyHint}`);
  }
  if (kind === "gateway") {
    // The page holds your function key: it only talks to gateways its host has listed.
    const how = "To use another gateway, add its origin to UI_GATEWAY_ORIGINS (page served by the function app) "
      + "or to this page's gateway-origins meta tag.";
    const title = context.why === "link"
      ? `Ignored the gateway in this link (${problem.url}): this page only talks to ${context.allowed}.`
      : `Not allowed: this page only talks to ${context.allowed}, not ${problem.url || "that address"}.`;
    return result(title, how);
  }
  if (kind === "truncated") {
    return result("The connection dropped before the answer was complete.", "What arrived is shown above; try again.");
  }
  if (kind === "filtered") return describeContentFilter("answer", problem.categories ?? []);
  if (code === "content_filter") return describeContentFilter("prompt", promptFilterCategories(error));
  const midStream = kind === "stream" ? "The answer was cut off. " : "";

  if (status === 429 || code === "429" || code === "rate_limit_exceeded" || error.type === "rate_limit_error") {
    const wait = retryAfterSeconds(problem.headers || {});
    return result(wait ? `Rate limited: too many requests right now. Retry in ${wait} s.`
      : "Rate limited: too many requests right now. Retry in a little while.", "", wait);
  }
  if (code === "model_not_found" || code === "DeploymentNotFound") {
    const which = context.model ? ` "${context.model}"` : "";
    const list = context.models?.length ? ` Choose one of: ${context.models.join(", ")}.` : " Choose one from the list.";
    return result(`Not allowed: the model${which} is not available on this gateway.${list}`);
  }
  if (status === 401) {
    return result("Not allowed: the gateway needs a valid function key.",
      "Paste the app's function key into the Function key field (sent as x-functions-key).");
  }
  if (status === 403 || code === "origin_not_allowed" || code.endsWith("_not_allowed")) {
    return result(`Not allowed${quoted(message)}`);
  }
  if (code === "upstream_unreachable" || status === 502 || status === 503) {
    return result(`${midStream}Upstream down: the AI service can't be reached right now. Try again in a moment.`,
      message);
  }
  if (code === "upstream_timeout" || status === 504 || status === 408) {
    return result(`${midStream}The AI service took too long to answer. Try again, or ask for something shorter.`,
      message);
  }
  if (status === 413 || code === "request_too_large") {
    return result("Too large: this is more than the gateway accepts in one request. Send less, or split it.", message);
  }
  if (status === 404) return result(`Not found${quoted(message)}`);
  if (status === 409) return result(`Not ready${quoted(message)}`);
  if (status === 400 || status === 422) return result(`The gateway rejected the request${quoted(message)}`);
  if (status >= 500 || kind === "stream") {
    return result(`${midStream || "Something went wrong on the server side. "}${message || "Try again."}`);
  }
  return result(`The request failed (HTTP ${status})${quoted(message)}`);
}

// ---------------------------------------------------------------------------------------------
// Azure's content filter in plain words
// ---------------------------------------------------------------------------------------------

// Azure screens prompts and answers. A blocked prompt is a 400 with code "content_filter" whose
// results say which categories tripped (chat: error.innererror.content_filter_result; Responses:
// error.content_filters[].content_filter_results); a blocked answer stops early (chat:
// finish_reason "content_filter" with the choice's content_filter_results; Responses: status
// "incomplete", reason "content_filter").
const FILTER_CATEGORIES = {
  hate: "hateful or discriminatory content",
  sexual: "sexual content",
  violence: "violence",
  self_harm: "self-harm",
  profanity: "profanity",
  jailbreak: "an attempt to get around the model's rules (jailbreak)",
  indirect_attack: "instructions hidden in a document (indirect attack)",
  protected_material_text: "copyrighted text",
  protected_material_code: "licensed code",
  custom_blocklists: "words on a blocklist set by the app's owner",
  custom_topics: "a topic blocked by the app's owner",
};

/**
 * The categories that were filtered in a content-filter result object, in plain words.
 * @param {Record<string, {filtered?: boolean}> | undefined} results
 * @returns {string[]}
 */
export function filteredCategories(results) {
  if (!results || typeof results !== "object") return [];
  return Object.entries(results)
    .filter(([, value]) => value && typeof value === "object" && value.filtered === true)
    .map(([name]) => FILTER_CATEGORIES[name] ?? name.replaceAll("_", " "));
}

/** "a", "a and b", "a, b and c". */
function listed(words) {
  return words.length <= 1 ? (words[0] ?? "") : `${words.slice(0, -1).join(", ")} and ${words.at(-1)}`;
}

/**
 * What to tell the user when the content filter blocked the prompt ("prompt") or cut the answer
 * ("answer").
 * @param {"prompt" | "answer"} stage
 * @param {string[]} categories from filteredCategories()
 * @returns {{title: string, detail: string, retryAfter: null}}
 */
export function describeContentFilter(stage, categories) {
  const why = categories.length ? ` for ${listed(categories)}` : "";
  const owner = "If this is a mistake, the deployment's owner can review its content filter in Azure AI Foundry.";
  return stage === "prompt"
    ? { title: `Blocked by Azure's content filter: your message was flagged${why}.`,
      detail: `Nothing was generated. Rephrase the message and send it again. ${owner}`, retryAfter: null }
    : { title: `Azure's content filter stopped the answer: it was flagged${why}.`,
      detail: `What arrived before that is shown above. Try asking in another way. ${owner}`, retryAfter: null };
}

/** The filtered categories of a content_filter error body (chat's or the Responses API's shape). */
export function promptFilterCategories(error = {}) {
  const fromChat = error.innererror?.content_filter_result;
  const fromResponses = (error.content_filters ?? []).map((entry) => entry?.content_filter_results);
  return [...new Set([fromChat, ...fromResponses].flatMap((results) => filteredCategories(results)))];
}

// ---------------------------------------------------------------------------------------------
// Talking to the gateway
// ---------------------------------------------------------------------------------------------

/** Lower-case header map of a fetch Response (only what CORS lets us see cross-origin). */
function headerMap(response) {
  const out = {};
  response.headers.forEach((value, name) => { out[name.toLowerCase()] = value; });
  return out;
}

/**
 * The origins this page may send requests (and the function key) to: its own, plus those listed in
 * <meta name="gateway-origins"> (the function app fills that in from UI_GATEWAY_ORIGINS).
 * @returns {Set<string>} page origin first, then the listed ones in order
 */
export function allowedOrigins(listed, pageOrigin) {
  const origins = new Set([pageOrigin]);
  for (const item of (listed ?? "").split(/\s+/)) {
    try {
      const url = new URL(item);
      if (url.protocol === "http:" || url.protocol === "https:") origins.add(url.origin);
    } catch { /* not a URL: ignored */ }
  }
  return origins;
}

/** Whether a gateway URL (absolute, or relative to the page) is on one of the allowed origins. */
export function gatewayAllowed(url, allowed, pageHref) {
  try {
    const parsed = new URL(url, pageHref);
    return (parsed.protocol === "http:" || parsed.protocol === "https:") && !parsed.username && !parsed.password
      && allowed.has(parsed.origin);
  } catch {
    return false;
  }
}

const absolute = (url, pageHref) => new URL(url, pageHref).href.replace(/\/+$/, "");

/**
 * The gateway base URL: ?gateway=, else the app this page is served by (/api/ui → /api), else the
 * last one used, else the first listed gateway. A ?gateway= or saved address on an origin that is
 * not allowed is passed over: a link someone sent must not redirect the key you paste.
 */
export function defaultGateway(location, saved, allowed = new Set([location.origin])) {
  const ok = (url) => url && gatewayAllowed(url, allowed, location.href);
  const fromQuery = new URL(location.href).searchParams.get("gateway");
  if (ok(fromQuery)) return absolute(fromQuery, location.href);
  const served = location.pathname.match(/^(.*)\/ui(?:\/.*)?$/i);
  if (served) return `${location.origin}${served[1]}`;
  if (ok(saved)) return absolute(saved, location.href);
  const listed = [...allowed].find((origin) => origin !== location.origin);
  return `${listed ?? location.origin}/api`;
}

/** The ?gateway= value the page refused to use (to say so), or null. */
export function ignoredGateway(location, allowed) {
  const fromQuery = new URL(location.href).searchParams.get("gateway");
  return fromQuery && !gatewayAllowed(fromQuery, allowed, location.href) ? fromQuery : null;
}

/** Percent of an embedding job that is done (embedded or failed), 0-100. */
export function jobProgress(job) {
  if (job.status === "succeeded") return 100;
  const total = job.counts?.total;
  if (!total) return 0;
  const done = (job.counts.embedded || 0) + (job.counts.failed || 0);
  return Math.min(100, Math.floor((done / total) * 100));
}

/** The inputs of an embedding job: one per non-blank line. */
export function splitLines(text) {
  return text.split(/\r\n|\n|\r/).filter((line) => line.trim() !== "");
}

/** Batch statuses after which nothing changes any more (OpenAI's Batch API). */
export const BATCH_DONE = ["completed", "failed", "cancelled", "expired"];

function asBatchRequest(line) {
  try {
    const value = JSON.parse(line);
    return value && typeof value === "object" && !Array.isArray(value) && "custom_id" in value ? value : null;
  } catch {
    return null;
  }
}

/**
 * The JSONL file a batch is made of, from the panel's text. When every line is already a batch
 * request (a JSON object with a custom_id), the lines are sent exactly as they are, and the batch's
 * endpoint is their url (Azure's "/embeddings" spelling taken as "/v1/embeddings"). Otherwise each
 * line is a text to embed and becomes one embeddings request for `model`, with custom_id "line-N".
 * @returns {{jsonl: string, endpoint: string, requests: number}}
 */
export function batchFile(text, model) {
  const lines = splitLines(text);
  const parsed = lines.map(asBatchRequest);
  if (lines.length && parsed.every(Boolean)) {
    const url = String(parsed[0].url ?? "");
    return { jsonl: `${lines.join("\n")}\n`, endpoint: url.startsWith("/v1/") ? url : `/v1${url}`, requests: lines.length };
  }
  const requests = lines.map((input, n) => JSON.stringify({
    custom_id: `line-${n + 1}`, method: "POST", url: "/v1/embeddings", body: { model, input },
  }));
  return { jsonl: requests.map((r) => `${r}\n`).join(""), endpoint: "/v1/embeddings", requests: requests.length };
}

/** Percent of a batch's requests that have an outcome (completed or failed), 0-100. */
export function batchProgress(batch) {
  if (batch.status === "completed") return 100;
  const counts = batch.request_counts ?? {};
  if (!counts.total) return 0;
  return Math.min(100, Math.floor((((counts.completed || 0) + (counts.failed || 0)) / counts.total) * 100));
}

/** A batch's request_counts in words. */
export function batchCounts(batch) {
  const counts = batch.request_counts ?? {};
  return `${counts.completed ?? 0} of ${counts.total ?? "?"} requests done · ${counts.failed ?? 0} failed`;
}

class Gateway {
  constructor() {
    this.base = "";
    this.key = "";
  }

  url(path) {
    return `${this.base}/${path.replace(/^\/+/, "")}`;
  }

  /**
   * fetch() against the gateway; resolves only for 2xx, throws GatewayProblem otherwise.
   * An AbortError (Stop) is passed through untouched.
   */
  async request(path, { method = "GET", body, signal, accept } = {}) {
    const headers = {};
    // A FormData body (a file upload) sets its own multipart content-type, boundary included.
    const form = typeof FormData !== "undefined" && body instanceof FormData;
    if (body !== undefined && !form) headers["content-type"] = "application/json";
    if (accept) headers.accept = accept;
    // Azure requires a function key on /api/v1/*; locally nothing checks it, so send it only if given.
    if (this.key) headers["x-functions-key"] = this.key;
    const url = this.url(path);
    let response;
    try {
      response = await fetch(url, {
        method, headers, signal, body: body === undefined || form ? body : JSON.stringify(body), cache: "no-store",
      });
    } catch (err) {
      if (err?.name === "AbortError") throw err;
      throw await this.diagnose(url);
    }
    if (response.ok) return response;
    const headersSeen = headerMap(response);
    let payload = {};
    try { payload = await response.json(); } catch { /* not JSON: keep the status */ }
    throw new GatewayProblem({
      status: response.status, error: payload?.error ?? {}, headers: headersSeen, url,
      requestId: headersSeen["x-request-id"] ?? "",
    });
  }

  /**
   * A fetch that fails without a status is either "nothing answers" or "the browser hid the answer"
   * (CORS). A no-cors request to the anonymous health endpoint tells them apart: CORS cannot block
   * it, so it only fails when the gateway is really unreachable.
   */
  async diagnose(url) {
    try {
      await fetch(this.url("health"), { mode: "no-cors", cache: "no-store" });
      const sameOrigin = new URL(url, globalThis.location?.href).origin === globalThis.location?.origin;
      return new GatewayProblem({ kind: sameOrigin ? "unreachable" : "refused", url });
    } catch {
      return new GatewayProblem({ kind: "unreachable", url: this.base });
    }
  }
}

/** An MCP server_label for a server URL: its host's first label, letters, digits, - and _ only. */
export function mcpLabel(url) {
  try {
    return new URL(url).hostname.split(".")[0].replace(/[^A-Za-z0-9_-]/g, "_") || "mcp";
  } catch {
    return "mcp";
  }
}

/**
 * One line about an MCP output item of the Responses API, as it is added (done=false) and finished.
 * @returns {{text: string, status: "running" | "done" | "failed" | "waiting"}}
 */
export function describeTool(item, done) {
  const where = item.server_label ? ` on ${item.server_label}` : "";
  if (item.type === "mcp_list_tools") {
    const names = (item.tools ?? []).map((tool) => tool.name);
    if (!done) return { text: `Listing the tools${where}…`, status: "running" };
    if (item.error) return { text: `Could not list the tools${where}: ${item.error}`, status: "failed" };
    return { text: `Tools${where}: ${names.join(", ") || "none"}`, status: "done" };
  }
  if (item.type === "mcp_approval_request") {
    return { text: `${item.name}${where} waits for approval (this page does not approve tool calls).`,
      status: "waiting" };
  }
  if (!done) return { text: `Calling ${item.name}${where}…`, status: "running" };
  if (item.error) return { text: `${item.name}${where} failed: ${item.error}`, status: "failed" };
  return { text: `Called ${item.name}${where}`, status: "done" };
}

const MCP_ITEMS = new Set(["mcp_list_tools", "mcp_call", "mcp_approval_request"]);

/**
 * The request body for one turn. Reasoning: chat takes reasoning_effort; the Responses API takes
 * reasoning {effort, summary: "auto"}, the summary being what the page shows while it streams.
 * An MCP server is a Responses tool, run by the model service (never by this page), so calls need no
 * approval here: the page has no way to show what a call would send before it is made.
 */
export function replyRequest({ api, model, history, reasoning = "", mcpUrl = "" }) {
  const input = history.map(({ role, content }) => ({ role, content }));
  if (api === "responses") {
    // store:false because the page keeps the conversation itself and resends it every turn.
    const body = { model, input, stream: true, store: false };
    if (reasoning) body.reasoning = { effort: reasoning, summary: "auto" };
    if (mcpUrl) {
      body.tools = [{ type: "mcp", server_label: mcpLabel(mcpUrl), server_url: mcpUrl, require_approval: "never" }];
    }
    return ["v1/responses", body];
  }
  const body = { model, messages: input, stream: true, stream_options: { include_usage: true } };
  if (reasoning) body.reasoning_effort = reasoning;
  return ["v1/chat/completions", body];
}

/**
 * Stream a reply, calling onDelta(text) for every piece of text as it arrives, onReasoning(text)
 * for every piece of a reasoning summary, and onTool(item, done) when an MCP item starts and ends.
 * Chat Completions ends with "data: [DONE]"; the Responses API with response.completed (or
 * .incomplete); the gateway reports a failure after the stream began as "event: error".
 * `filtered` is null, or the categories (plain words, maybe none known) for which Azure's content
 * filter cut the answer.
 * @returns {Promise<{usage: object | null, requestId: string, filtered: string[] | null}>}
 */
export async function streamReply(gateway, {
  api, model, history, signal, onDelta, onOpen, reasoning, mcpUrl, onReasoning = () => {}, onTool = () => {},
}) {
  const [path, body] = replyRequest({ api, model, history, reasoning, mcpUrl });
  const response = await gateway.request(path, { method: "POST", body, signal, accept: "text/event-stream" });
  const headers = headerMap(response);
  const requestId = headers["x-request-id"] ?? "";
  onOpen?.(requestId);
  let finished = false;
  let usage = null;
  let filtered = null;
  const fail = (error) => new GatewayProblem({ kind: "stream", status: 200, error, headers, requestId });

  for await (const { event, data } of readEvents(response.body)) {
    if (data === "[DONE]") { finished = true; break; }
    let payload;
    try { payload = JSON.parse(data); } catch { continue; }
    if (event === "error" || payload.type === "error") {
      throw fail(payload.error ?? { message: payload.message, code: payload.code });
    }
    if (api === "responses") {
      const type = payload.type ?? event;
      if (type === "response.output_text.delta") onDelta(payload.delta ?? "");
      else if (type === "response.reasoning_summary_text.delta") onReasoning(payload.delta ?? "");
      else if (type === "response.reasoning_summary_part.added" && payload.summary_index > 0) onReasoning("\n\n");
      else if ((type === "response.output_item.added" || type === "response.output_item.done")
        && MCP_ITEMS.has(payload.item?.type)) onTool(payload.item, type === "response.output_item.done");
      else if (type === "response.completed" || type === "response.incomplete") {
        usage = payload.response?.usage ?? null;
        if (payload.response?.incomplete_details?.reason === "content_filter") filtered = [];
        finished = true;
      } else if (type === "response.failed") {
        throw fail(payload.response?.error ?? { message: "The response failed." });
      }
    } else {
      if (payload.error) throw fail(payload.error);
      const choice = payload.choices?.[0];
      const piece = choice?.delta?.content;
      if (piece) onDelta(piece);
      if (choice?.finish_reason === "content_filter") filtered = filteredCategories(choice.content_filter_results);
      if (payload.usage) usage = payload.usage;
    }
  }
  if (!finished) throw new GatewayProblem({ kind: "truncated", requestId });
  return { usage, requestId, filtered };
}

// ---------------------------------------------------------------------------------------------
// Page
// ---------------------------------------------------------------------------------------------

function boot() {
  const $ = (id) => document.getElementById(id);
  const gateway = new Gateway();
  const state = {
    history: [], // [{role: "user"|"assistant", content}] - resent in full on every turn
    models: [],
    controller: null, // AbortController of the reply being streamed
    jobRun: 0, // bumps when a new job or batch is submitted, so an older poll loop stops
    jobBlobUrl: null,
    batch: null, // the batch on show ({id, output, errors}: its file ids), or null for an embedding job
  };
  const countdowns = new WeakMap();

  // --- errors -------------------------------------------------------------------------------
  function showError(box, problem, context = {}) {
    clearInterval(countdowns.get(box));
    const described = describeError(problem, {
      origin: location.origin, models: state.models, hasKey: Boolean(gateway.key), ...context,
    });
    box.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = described.title;
    box.append(title);
    if (described.detail) {
      const detail = document.createElement("span");
      detail.textContent = ` ${described.detail}`;
      box.append(detail);
    }
    if (problem.requestId) {
      const id = document.createElement("small");
      id.textContent = ` Request id ${problem.requestId}.`;
      box.append(id);
    }
    box.dataset.kind = problem.kind === "http" ? String(problem.status) : problem.kind;
    box.hidden = false;
    if (described.retryAfter) {
      // Count the wait down in place, so the user knows when retrying makes sense.
      let left = described.retryAfter;
      countdowns.set(box, setInterval(() => {
        left -= 1;
        title.textContent = left > 0 ? described.title.replace(/Retry in \d+ s\./, `Retry in ${left} s.`)
          : "Rate limited a moment ago: you can retry now.";
        if (left <= 0) clearInterval(countdowns.get(box));
      }, 1000));
    }
  }

  function hideError(box) {
    clearInterval(countdowns.get(box));
    box.hidden = true;
    box.replaceChildren();
  }

  function asProblem(err) {
    return err instanceof GatewayProblem ? err : new GatewayProblem({ kind: "stream", error: { message: String(err?.message ?? err) } });
  }

  // --- settings and models ------------------------------------------------------------------
  const allowed = allowedOrigins(document.querySelector('meta[name="gateway-origins"]')?.content, location.origin);
  const saved = localStorage.getItem("gateway-url");
  $("gateway").value = defaultGateway(location, saved, allowed);
  const allowedList = () => [...allowed].join(", ");
  function refuseGateway(url, why) {
    $("connection").textContent = "Not connected";
    document.body.dataset.models = "error";
    showError($("banner"), new GatewayProblem({ kind: "gateway", url }), { why, allowed: allowedList() });
  }

  function fillDatalist(list, names) {
    list.replaceChildren(...names.map((name) => Object.assign(document.createElement("option"), { value: name })));
  }

  async function connect() {
    const wanted = $("gateway").value.trim();
    if (!gatewayAllowed(wanted, allowed, location.href)) {
      refuseGateway(wanted, "typed");
      return;
    }
    gateway.base = wanted.replace(/\/+$/, "");
    // The key stays in memory only: anything in localStorage is readable by every script on this origin.
    gateway.key = $("key").value.trim();
    localStorage.setItem("gateway-url", gateway.base);
    document.body.dataset.models = "loading";
    $("connection").textContent = "Connecting…";
    hideError($("banner"));
    try {
      const response = await gateway.request("v1/models");
      const names = ((await response.json()).data ?? []).map((m) => m.id);
      state.models = names;
      const embedding = names.filter((n) => /embed/i.test(n));
      const chat = names.filter((n) => !/embed/i.test(n));
      fillDatalist($("chat-models"), chat);
      fillDatalist($("embedding-models"), embedding);
      if (!chat.includes($("chat-model").value)) $("chat-model").value = chat[0] ?? "";
      if (!embedding.includes($("job-model").value)) $("job-model").value = embedding[0] ?? "";
      $("connection").textContent = `Connected · ${names.length} model${names.length === 1 ? "" : "s"}`;
      document.body.dataset.models = "loaded";
    } catch (err) {
      $("connection").textContent = "Not connected";
      document.body.dataset.models = "error";
      for (const id of ["chat-model", "job-model"]) $(id).placeholder = "model name";
      showError($("banner"), asProblem(err));
    }
  }

  $("settings").addEventListener("submit", (e) => { e.preventDefault(); connect(); });

  // --- chat ---------------------------------------------------------------------------------
  const conversation = $("conversation");

  function addMessage(role, text = "") {
    conversation.querySelector(".hint")?.remove();
    const item = document.createElement("li");
    item.className = `msg ${role}`;
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "Assistant";
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = text;
    item.append(who, body);
    conversation.append(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  /**
   * The reasoning summary of one reply: a collapsible block above the answer, open while the
   * summary streams in, folded away once the answer starts (a click opens it again).
   */
  function reasoningBox(item) {
    let box = null;
    return {
      add(piece) {
        if (!box) {
          box = document.createElement("details");
          box.className = "reasoning";
          box.open = true;
          const label = document.createElement("summary");
          label.textContent = "Thinking…";
          const text = document.createElement("div");
          text.className = "reasoning-text";
          box.append(label, text);
          item.querySelector(".text").before(box);
        }
        box.querySelector(".reasoning-text").textContent += piece;
      },
      answerStarted() {
        if (!box || box.dataset.folded) return;
        box.dataset.folded = "true";
        box.open = false;
        box.querySelector("summary").textContent = "Reasoning summary";
      },
    };
  }

  /** MCP tool activity of one reply, one line per item, updated in place as each one finishes. */
  function toolList(item) {
    let list = null;
    return {
      show(toolItem, done) {
        if (!list) {
          list = document.createElement("ul");
          list.className = "tools";
          item.querySelector(".text").before(list);
        }
        const id = String(toolItem.id ?? list.children.length);
        let line = [...list.children].find((li) => li.dataset.id === id);
        if (!line) {
          line = document.createElement("li");
          line.dataset.id = id;
          line.dataset.type = toolItem.type;
          list.append(line);
        }
        const { text, status } = describeTool(toolItem, done);
        line.textContent = text;
        line.dataset.status = status;
      },
    };
  }

  function setStreaming(on) {
    $("send").disabled = on;
    $("stop").disabled = !on;
    document.body.dataset.streaming = on ? "true" : "false";
  }

  async function send() {
    const text = $("prompt").value.trim();
    if (!text || state.controller) return;
    const api = document.querySelector('input[name="api"]:checked').value;
    const model = $("chat-model").value.trim();
    const reasoning = $("reasoning").value;
    const mcpUrl = api === "responses" ? $("mcp-url").value.trim() : "";
    hideError($("chat-error"));
    $("prompt").value = "";

    // This turn's conversation: "New conversation" mid-reply swaps state.history for a fresh one,
    // and whatever this reply ends with must not leak into it.
    const history = state.history;
    history.push({ role: "user", content: text });
    const userItem = addMessage("user", text);
    const item = addMessage("assistant");
    item.dataset.state = "waiting";
    const body = item.querySelector(".text");
    const controller = new AbortController();
    state.controller = controller;
    setStreaming(true);

    const started = performance.now();
    let firstToken = null;
    let pieces = 0;
    let reply = "";
    const status = (line) => { $("chat-status").textContent = line; };
    status(`Waiting for ${model || "the model"}…`);
    const thoughts = reasoningBox(item);
    const tools = toolList(item);

    try {
      const { usage, requestId, filtered } = await streamReply(gateway, {
        api, model, history, reasoning, mcpUrl, signal: controller.signal,
        onOpen: () => { item.dataset.state = "streaming"; },
        onReasoning: (piece) => {
          thoughts.add(piece);
          status("Reasoning…");
        },
        onTool: (toolItem, done) => tools.show(toolItem, done),
        onDelta: (piece) => {
          thoughts.answerStarted();
          firstToken ??= performance.now() - started;
          pieces += 1;
          reply += piece;
          body.textContent = reply;
          status(`Receiving… first token after ${Math.round(firstToken)} ms · ${pieces} pieces`);
          if (pieces % 8 === 0) item.scrollIntoView({ block: "end" });
        },
      });
      thoughts.answerStarted();
      item.dataset.state = filtered ? "filtered" : "done";
      history.push({ role: "assistant", content: reply });
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const tokens = usage ? ` · ${usage.completion_tokens ?? usage.output_tokens ?? "?"} tokens` : "";
      const thinking = usage?.completion_tokens_details?.reasoning_tokens ?? usage?.output_tokens_details?.reasoning_tokens;
      status(`Done in ${seconds} s${firstToken === null ? "" : ` · first token after ${Math.round(firstToken)} ms`}${tokens}` +
        (thinking ? ` (${thinking} for reasoning)` : "") + (requestId ? ` · request id ${requestId}` : ""));
      if (filtered) {
        showError($("chat-error"), Object.assign(new GatewayProblem({ kind: "filtered", requestId }), { categories: filtered }));
      }
    } catch (err) {
      if (err?.name === "AbortError") {
        // Closing the connection is the whole protocol: the gateway sees the client leave and
        // closes its upstream stream, so generation (and billing) stops there too.
        item.dataset.state = "stopped";
        if (reply) history.push({ role: "assistant", content: reply });
        else history.pop(); // nothing came back: forget the question, keep it on screen
        status(`Stopped after ${pieces} pieces. Closing the connection makes the gateway cancel the upstream request.`);
      } else {
        const problem = asProblem(err);
        if (reply) {
          item.dataset.state = "error";
          history.push({ role: "assistant", content: reply });
        } else {
          // Nothing was answered: take the turn back and return the text to the box to retry.
          history.pop();
          item.remove();
          userItem.remove();
          $("prompt").value = text;
        }
        status("");
        showError($("chat-error"), problem, { model });
      }
    } finally {
      state.controller = null;
      setStreaming(false);
    }
  }

  $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("clear").addEventListener("click", () => {
    state.controller?.abort();
    state.history = [];
    conversation.replaceChildren();
    $("chat-status").textContent = "";
    hideError($("chat-error"));
  });

  // --- embedding job or batch ---------------------------------------------------------------
  const asBatch = () => document.querySelector('input[name="job-kind"]:checked')?.value === "batch";

  function countLines() {
    const n = asBatch() ? batchFile($("job-input").value, "").requests : splitLines($("job-input").value).length;
    const noun = asBatch() ? "request" : "input";
    $("job-lines").textContent = `${n} ${noun}${n === 1 ? "" : "s"}`;
    $("job-submit").textContent = asBatch() ? "Submit batch" : "Submit job";
  }
  $("job-input").addEventListener("input", countLines);
  for (const radio of document.querySelectorAll('input[name="job-kind"]')) radio.addEventListener("change", countLines);
  $("job-file").addEventListener("change", async () => {
    const file = $("job-file").files?.[0];
    if (!file) return;
    $("job-input").value = await file.text();
    countLines();
  });

  function showProgress(noun, id, status, percent, counts) {
    $("job-view").hidden = false;
    $("job-noun").textContent = noun;
    $("job-id").textContent = id;
    $("job-state").textContent = status;
    $("job-state").dataset.status = status;
    $("job-progress").value = percent;
    $("job-percent").textContent = `${percent}%`;
    $("job-counts").textContent = counts;
  }

  function renderJob(job) {
    const c = job.counts ?? {};
    const tokens = job.usage?.total_tokens ?? job.tokens;
    showProgress("Job", job.id, job.status, jobProgress(job), `${c.embedded ?? 0} of ${c.total ?? "?"} embedded · ${c.failed ?? 0} failed` +
      (tokens ? ` · ${tokens} tokens` : ""));
    state.batch = null;
    // A job's results are readable whenever its view names them: while it runs (the chunks finished
    // so far) and after it ended (succeeded, or failed/cancelled with its finished lines).
    $("job-download").disabled = !job.results;
    $("job-download").textContent = job.status === "running" || job.status === "queued"
      ? "Download results so far (JSONL)" : "Download results (JSONL)";
    $("job-errors").hidden = true;
  }

  function renderBatch(batch) {
    showProgress("Batch", batch.id, batch.status, batchProgress(batch), batchCounts(batch));
    state.batch = { id: batch.id, output: batch.output_file_id ?? null, errors: batch.error_file_id ?? null };
    $("job-download").disabled = !state.batch.output;
    $("job-download").textContent = "Download output (JSONL)";
    $("job-errors").hidden = !state.batch.errors;
  }

  const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

  /**
   * Poll `path` with back-off until `finished(body)`, rendering each answer; stops when a newer
   * submission bumps state.jobRun. `failure(body)` returns the reason when it ended badly.
   */
  async function watch(path, run, { render, finished, failure }) {
    let delay = 300;
    let misses = 0;
    while (run === state.jobRun) {
      await sleep(delay);
      if (run !== state.jobRun) return;
      try {
        const body = await (await gateway.request(path)).json();
        misses = 0;
        render(body);
        if (finished(body)) {
          const reason = failure(body);
          if (reason) showError($("job-error"), new GatewayProblem({ status: 500, error: { message: reason } }));
          return;
        }
        delay = Math.min(2000, delay * 1.5);
      } catch (err) {
        // A blip while polling is not the job failing: say so, and keep watching a while.
        misses += 1;
        const problem = asProblem(err);
        showError($("job-error"), problem);
        if (misses >= 10 || (problem.status >= 400 && problem.status < 500 && problem.status !== 429)) return;
        delay = (retryAfterSeconds(problem.headers ?? {}) ?? 2) * 1000;
        continue;
      }
      hideError($("job-error"));
    }
  }

  async function submitJob(run, input, model) {
    const response = await gateway.request("v1/embeddings/jobs", { method: "POST", body: { model, input } });
    const job = await response.json();
    renderJob(job);
    await watch(`v1/embeddings/jobs/${encodeURIComponent(job.id)}`, run, {
      render: renderJob,
      finished: (body) => ["succeeded", "failed"].includes(body.status),
      failure: (body) => (body.status === "failed" ? `The job failed: ${body.error?.message ?? "no reason given"}` : ""),
    });
  }

  /** The Batch API as any client uses it: upload the JSONL (multipart), create the batch, poll it. */
  async function submitBatch(run, text, model) {
    const { jsonl, endpoint } = batchFile(text, model);
    const form = new FormData();
    form.append("purpose", "batch");
    form.append("file", new Blob([jsonl], { type: "application/jsonl" }), "batch.jsonl");
    const file = await (await gateway.request("v1/files", { method: "POST", body: form })).json();
    const batch = await (await gateway.request("v1/batches", {
      method: "POST", body: { input_file_id: file.id, endpoint, completion_window: "24h" },
    })).json();
    renderBatch(batch);
    await watch(`v1/batches/${encodeURIComponent(batch.id)}`, run, {
      render: renderBatch,
      finished: (body) => BATCH_DONE.includes(body.status),
      failure: (body) => {
        if (body.status === "failed") return `The batch failed: ${body.errors?.data?.[0]?.message ?? "no reason given"}`;
        return body.status === "expired" ? "The batch ran out of time: finished requests are in its output." : "";
      },
    });
  }

  $("job-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("job-input").value;
    const model = $("job-model").value.trim();
    hideError($("job-error"));
    if (!splitLines(text).length) {
      showError($("job-error"), new GatewayProblem({ status: 400, error: { message: "add at least one line to embed." } }));
      return;
    }
    const run = ++state.jobRun;
    $("job-submit").disabled = true;
    try {
      if (asBatch()) await submitBatch(run, text, model);
      else await submitJob(run, splitLines(text), model);
    } catch (err) {
      showError($("job-error"), asProblem(err), { model });
    } finally {
      if (run === state.jobRun) $("job-submit").disabled = false;
    }
  });

  /** fetch + a Blob URL rather than a plain link: a link cannot carry the x-functions-key header. */
  async function download(path, filename) {
    try {
      const blob = await (await gateway.request(path)).blob();
      if (state.jobBlobUrl) URL.revokeObjectURL(state.jobBlobUrl);
      state.jobBlobUrl = URL.createObjectURL(blob);
      const link = Object.assign(document.createElement("a"), { href: state.jobBlobUrl, download: filename });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (err) {
      showError($("job-error"), asProblem(err));
    }
  }

  $("job-download").addEventListener("click", () => {
    const { batch } = state;
    if (batch?.output) download(`v1/files/${encodeURIComponent(batch.output)}/content`, `${batch.id}-output.jsonl`);
    else {
      const id = $("job-id").textContent;
      download(`v1/embeddings/jobs/${encodeURIComponent(id)}/results`, `${id}.jsonl`);
    }
  });
  $("job-errors").addEventListener("click", () => {
    const { batch } = state;
    if (batch?.errors) download(`v1/files/${encodeURIComponent(batch.errors)}/content`, `${batch.id}-errors.jsonl`);
  });

  countLines();
  setStreaming(false);
  const ignored = ignoredGateway(location, allowed);
  connect().then(() => {
    // Said after connecting (which clears the banner), unless connecting had something worse to say.
    if (ignored && $("banner").hidden) {
      showError($("banner"), new GatewayProblem({ kind: "gateway", url: ignored }), { why: "link", allowed: allowedList() });
    }
  });
}

if (typeof document !== "undefined") boot();
