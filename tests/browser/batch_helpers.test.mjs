// Unit tests of web/app.js's batch helpers (the JSONL the page uploads, progress from
// request_counts), run with node's own test runner by test_batch_panel.py: no browser needed.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

// Imported from a data: URL, as app_helpers.test.mjs does: the file stays exactly what the browser gets.
const source = await readFile(new URL("../../web/app.js", import.meta.url), "utf8");
const { batchFile, batchProgress, batchCounts, BATCH_DONE } = await import(
  `data:text/javascript;base64,${Buffer.from(source).toString("base64")}`);

test("texts become one embeddings request each, numbered by line", () => {
  const file = batchFile("first text\r\n\n  second  \n", "text-embedding-3-small");
  assert.equal(file.endpoint, "/v1/embeddings");
  assert.equal(file.requests, 2);
  assert.ok(file.jsonl.endsWith("}\n"));
  assert.deepEqual(file.jsonl.trimEnd().split("\n").map((line) => JSON.parse(line)), [
    { custom_id: "line-1", method: "POST", url: "/v1/embeddings", body: { model: "text-embedding-3-small", input: "first text" } },
    { custom_id: "line-2", method: "POST", url: "/v1/embeddings", body: { model: "text-embedding-3-small", input: "  second  " } },
  ]);
});

test("request lines are uploaded byte for byte, and their url is the endpoint", () => {
  const lines = [
    '{"custom_id":"a","method":"POST","url":"/chat/completions","body":{"model":"m","messages":[]}}',
    '{"custom_id": "b", "method": "POST", "url": "/chat/completions", "body": {"model": "m", "messages": []}}',
  ];
  const file = batchFile(lines.join("\n"), "ignored");
  assert.deepEqual(file, { jsonl: `${lines.join("\n")}\n`, endpoint: "/v1/chat/completions", requests: 2 });
  assert.equal(batchFile(lines[0].replace("/chat/completions", "/v1/responses"), "x").endpoint, "/v1/responses");
});

test("text that only partly looks like requests is embedded as text", () => {
  const file = batchFile('{"custom_id":"a"}\nplain words', "m");
  assert.equal(file.requests, 2);
  assert.equal(JSON.parse(file.jsonl.split("\n")[0]).body.input, '{"custom_id":"a"}');
  assert.deepEqual(batchFile(" \n", "m"), { jsonl: "", endpoint: "/v1/embeddings", requests: 0 });
});

test("progress counts completed and failed requests, and a completed batch is 100%", () => {
  assert.equal(batchProgress({ status: "validating", request_counts: { total: 0, completed: 0, failed: 0 } }), 0);
  assert.equal(batchProgress({ status: "in_progress", request_counts: { total: 3, completed: 1, failed: 0 } }), 33);
  assert.equal(batchProgress({ status: "in_progress", request_counts: { total: 4, completed: 2, failed: 1 } }), 75);
  assert.equal(batchProgress({ status: "completed", request_counts: { total: 4, completed: 0, failed: 0 } }), 100);
  assert.equal(batchProgress({ status: "validating" }), 0);
  assert.equal(batchCounts({ request_counts: { total: 5, completed: 2, failed: 1 } }), "2 of 5 requests done · 1 failed");
  assert.equal(batchCounts({}), "0 of ? requests done · 0 failed");
  assert.deepEqual(BATCH_DONE, ["completed", "failed", "cancelled", "expired"]);
});
