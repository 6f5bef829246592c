// Unit tests of web/app.js's pure helpers (SSE parsing, errors in plain words, job progress), run
// with node's own test runner by test_app_helpers.py: fast, and no browser needed.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

// Imported from a data: URL, which is always an ES module: web/ has no package.json saying
// "type": "module" (the page needs none), and the file must stay exactly what the browser gets.
const source = await readFile(new URL("../../web/app.js", import.meta.url), "utf8");
const app = await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);
const {
  createSSEParser, describeError, GatewayProblem, retryAfterSeconds, jobProgress, splitLines, defaultGateway,
  allowedOrigins, gatewayAllowed, ignoredGateway, filteredCategories, promptFilterCategories, describeTool,
  replyRequest, mcpLabel,
} = app;

const STREAM = [
  ": keep-alive comment\r\n",
  "event: response.output_text.delta\r\n",
  'data: {"delta":"Hel"}\r\n\r\n',
  "data: first line\n",
  "data:second line\n\n",
  "event: error\r",
  'data: {"type":"error","error":{"code":"upstream_timeout"}}\r\r',
  "data: [DONE]\n\n",
].join("");
const EXPECTED = [
  { event: "response.output_text.delta", data: '{"delta":"Hel"}' },
  { event: "message", data: "first line\nsecond line" },
  { event: "error", data: '{"type":"error","error":{"code":"upstream_timeout"}}' },
  { event: "message", data: "[DONE]" },
];

test("SSE events are the same however the network splits the stream", () => {
  for (let cut = 0; cut <= STREAM.length; cut += 1) {
    const parser = createSSEParser();
    const events = [...parser.push(STREAM.slice(0, cut)), ...parser.push(STREAM.slice(cut))];
    assert.deepEqual(events, EXPECTED, `split at ${cut}`);
  }
  const parser = createSSEParser();
  assert.deepEqual([...STREAM].flatMap((ch) => parser.push(ch)), EXPECTED, "one character at a time");
});

test("SSE: a byte-order mark is skipped, an unterminated last event is dropped", () => {
  const parser = createSSEParser();
  assert.deepEqual(parser.push('\ufeffdata: {"a":1}\n\ndata: {"cut'), [{ event: "message", data: '{"a":1}' }]);
  parser.end();
  assert.deepEqual(parser.push("\n"), [], "nothing of the dropped event survives end()");
});

test("retry-after-ms wins, then retry-after in seconds or as a date", () => {
  assert.equal(retryAfterSeconds({ "retry-after-ms": "2500", "retry-after": "9" }), 3);
  assert.equal(retryAfterSeconds({ "retry-after": "7" }), 7);
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(retryAfterSeconds({ "retry-after": "Thu, 01 Jan 2026 00:00:12 GMT" }, now), 12);
  assert.equal(retryAfterSeconds({}), null);
});

test("errors come out in plain words", () => {
  const say = (init, context) => describeError(new GatewayProblem(init), context).title;
  assert.match(say({ status: 429, headers: { "retry-after-ms": "4000" }, error: { code: "429" } }), /^Rate limited.*Retry in 4 s\.$/);
  assert.equal(describeError(new GatewayProblem({ status: 429, headers: { "retry-after": "4" } })).retryAfter, 4);
  assert.match(say({ status: 404, error: { code: "model_not_found" } }, { model: "x", models: ["a", "b"] }),
    /^Not allowed: the model "x" is not available on this gateway\. Choose one of: a, b\.$/);
  assert.match(say({ status: 401 }), /^Not allowed: .*function key/);
  assert.match(say({ status: 400, error: { code: "mcp_server_not_allowed", message: "no" } }), /^Not allowed: no$/);
  assert.match(say({ status: 502, error: { code: "upstream_unreachable" } }), /^Upstream down/);
  assert.match(say({ status: 503 }), /^Upstream down/);
  assert.match(say({ status: 504, error: { code: "upstream_timeout" } }), /took too long/);
  assert.match(say({ status: 413 }), /^Too large/);
  assert.match(say({ kind: "stream", status: 200, error: { code: "upstream_unreachable" } }), /^The answer was cut off\. Upstream down/);
  assert.match(say({ kind: "truncated" }), /connection dropped/);
  assert.match(say({ kind: "refused" }, { origin: "https://a.test" }), /^Not allowed: .*\(https:\/\/a\.test\)/);
  assert.match(say({ kind: "unreachable", url: "http://h/api" }), /^Can't reach the gateway at http:\/\/h\/api/);
  assert.match(say({ status: 500, error: { message: "boom" } }), /boom/);
});

test("job progress, input lines and the default gateway", () => {
  assert.equal(jobProgress({ status: "running", counts: { total: 8, embedded: 3, failed: 1 } }), 50);
  assert.equal(jobProgress({ status: "queued", counts: { total: null } }), 0);
  assert.equal(jobProgress({ status: "succeeded", counts: { total: 8, embedded: 7, failed: 1 } }), 100);
  assert.deepEqual(splitLines("a\r\nb\n\n  \nc\r"), ["a", "b", "c"]);
  const at = (href) => { const u = new URL(href); return { href, origin: u.origin, pathname: u.pathname }; };
  const listed = (page, ...origins) => allowedOrigins(origins.join(" "), new URL(page).origin);
  const g = listed("http://s.test/", "http://localhost:7071", "https://g.test", "https://saved.test");
  assert.equal(defaultGateway(at("https://app.test/api/ui/"), null), "https://app.test/api");
  assert.equal(defaultGateway(at("https://app.test/api/ui/index.html?x=1"), null), "https://app.test/api");
  assert.equal(defaultGateway(at("http://s.test/index.html?gateway=https://g.test/api/"), "x", g), "https://g.test/api");
  assert.equal(defaultGateway(at("http://s.test/"), "https://saved.test/api", g), "https://saved.test/api");
  assert.equal(defaultGateway(at("http://s.test/"), null, g), "http://localhost:7071/api");
});

test("a crafted link cannot point the page (and its function key) at another gateway", () => {
  const at = (href) => { const u = new URL(href); return { href, origin: u.origin, pathname: u.pathname }; };
  const own = allowedOrigins("", "https://app.test");
  assert.deepEqual([...own], ["https://app.test"]);
  const evil = at("https://app.test/api/ui/?gateway=https://evil.test/api");
  assert.equal(defaultGateway(evil, null, own), "https://app.test/api");
  assert.equal(ignoredGateway(evil, own), "https://evil.test/api");
  assert.equal(ignoredGateway(at("https://app.test/api/ui/?gateway=https://app.test/other"), own), null);
  // Lookalikes: another scheme, port, a userinfo trick, a suffix; saved values are checked too.
  const listed = allowedOrigins("https://gw.test  http://localhost:7071 not-a-url", "https://app.test");
  assert.deepEqual([...listed].sort(), ["http://localhost:7071", "https://app.test", "https://gw.test"]);
  for (const bad of ["http://gw.test/api", "https://gw.test:444/api", "https://gw.test@evil.test/api",
    "https://gw.test.evil.test/api", "javascript:alert(1)", "data:text/plain,x"]) {
    assert.equal(gatewayAllowed(bad, listed, "https://app.test/"), false, bad);
  }
  assert.equal(gatewayAllowed("https://gw.test/api", listed, "https://app.test/"), true);
  assert.equal(gatewayAllowed("/api", listed, "https://app.test/ui/"), true);
  assert.equal(defaultGateway(at("http://s.test/"), "https://evil.test/api", allowedOrigins("", "http://s.test")),
    "http://s.test/api");
});

test("content-filter results name the filtered categories in plain words", () => {
  const results = {
    hate: { filtered: false, severity: "safe" }, violence: { filtered: true, severity: "medium" },
    jailbreak: { filtered: true, detected: true }, custom_thing: { filtered: true },
  };
  assert.deepEqual(filteredCategories(results),
    ["violence", "an attempt to get around the model's rules (jailbreak)", "custom thing"]);
  assert.deepEqual(filteredCategories(undefined), []);
  // Chat's error shape and the Responses API's, each naming the category once.
  const chat = { code: "content_filter", innererror: { content_filter_result: { sexual: { filtered: true } } } };
  const responses = { code: "content_filter", content_filters: [{ content_filter_results: { self_harm: { filtered: true } } }] };
  assert.deepEqual(promptFilterCategories(chat), ["sexual content"]);
  assert.deepEqual(promptFilterCategories(responses), ["self-harm"]);
  const said = describeError(new GatewayProblem({ status: 400, error: chat }));
  assert.match(said.title, /^Blocked by Azure's content filter: your message was flagged for sexual content\.$/);
  assert.match(said.detail, /Rephrase/);
  const unknown = describeError(new GatewayProblem({ status: 400, error: { code: "content_filter" } }));
  assert.equal(unknown.title, "Blocked by Azure's content filter: your message was flagged.");
  const cut = Object.assign(new GatewayProblem({ kind: "filtered" }), { categories: ["violence", "self-harm"] });
  assert.equal(describeError(cut).title, "Azure's content filter stopped the answer: it was flagged for violence and self-harm.");
});

test("MCP items are described as they start and finish", () => {
  const call = { type: "mcp_call", server_label: "docs", name: "search" };
  assert.deepEqual(describeTool(call, false), { text: "Calling search on docs…", status: "running" });
  assert.deepEqual(describeTool(call, true), { text: "Called search on docs", status: "done" });
  assert.equal(describeTool({ ...call, error: "timeout" }, true).status, "failed");
  const listing = { type: "mcp_list_tools", server_label: "docs", tools: [{ name: "a" }, { name: "b" }] };
  assert.equal(describeTool(listing, true).text, "Tools on docs: a, b");
  assert.equal(describeTool({ type: "mcp_approval_request", server_label: "docs", name: "a" }, false).status, "waiting");
  assert.equal(mcpLabel("https://learn.example.com/api/mcp"), "learn");
  assert.equal(mcpLabel("not a url"), "mcp");
});

test("reply requests ask for reasoning and MCP the way each API takes them", () => {
  const history = [{ role: "user", content: "hi" }];
  const [chatPath, chat] = replyRequest({ api: "chat", model: "m", history, reasoning: "low", mcpUrl: "https://x.test/mcp" });
  assert.equal(chatPath, "v1/chat/completions");
  assert.equal(chat.reasoning_effort, "low");
  assert.equal(chat.tools, undefined);
  const [path, body] = replyRequest({ api: "responses", model: "m", history, reasoning: "high", mcpUrl: "https://x.test/mcp" });
  assert.equal(path, "v1/responses");
  assert.deepEqual(body.reasoning, { effort: "high", summary: "auto" });
  assert.deepEqual(body.tools, [{ type: "mcp", server_label: "x", server_url: "https://x.test/mcp", require_approval: "never" }]);
  const [, plain] = replyRequest({ api: "responses", model: "m", history });
  assert.equal(plain.reasoning, undefined);
  assert.equal(plain.tools, undefined);
});
