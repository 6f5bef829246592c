// The Batch API with the official JavaScript SDK, as an application uses it: upload a JSONL file,
// create a batch, poll it until it ends, download its output, cancel a second one, list (auto-paging),
// and two refusals.
//
//   node tests/e2e/batch_sdk.mjs BASE_URL KEY FILE     prints what it saw as one JSON line
//
// Started by tests/e2e/test_batch_sdk.py, which owns the servers and the assertions. KEY is sent as
// x-functions-key: the gateway's caller identity (whose files and batches these are).

import fs from "node:fs";
import OpenAI, { toFile } from "openai";

const [baseURL, key, path] = process.argv.slice(2);
const client = new OpenAI({
  baseURL, apiKey: "local", maxRetries: 0, timeout: 30000, defaultHeaders: { "x-functions-key": key },
});
const seen = {};

async function refusal(promise) {
  try {
    await promise;
    return 200;
  } catch (error) {
    return [error.status, error.code];
  }
}

const uploaded = await client.files.create({ file: fs.createReadStream(path), purpose: "batch" });
seen.uploaded = [uploaded.object, uploaded.purpose];

const created = await client.batches.create({
  input_file_id: uploaded.id, endpoint: "/v1/embeddings", completion_window: "24h",
});
seen.created = created.status;
seen.batchId = created.id;

async function reaches(id, statuses) {
  let batch = await client.batches.retrieve(id);
  for (let i = 0; i < 600 && !statuses.includes(batch.status); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    batch = await client.batches.retrieve(id);
  }
  return batch;
}
const ENDED = ["completed", "failed", "cancelled", "expired"];
const finished = (id) => reaches(id, ENDED);

const batch = await finished(created.id);
seen.final = batch.status;
seen.counts = batch.request_counts;
seen.outputFileId = batch.output_file_id;
seen.output = batch.output_file_id ? await (await client.files.content(batch.output_file_id)).text() : null;

// A second batch of the same file, cancelled while its (slow) upstream call runs: every request
// ends in the error file.
const second = await client.batches.create({
  input_file_id: uploaded.id, endpoint: "/v1/embeddings", completion_window: "24h",
});
seen.secondId = second.id;
seen.running = (await reaches(second.id, ["in_progress", ...ENDED])).status;
seen.cancelling = (await client.batches.cancel(second.id)).status;
const cancelled = await finished(second.id);
seen.cancelled = cancelled.status;
seen.cancelledErrors = cancelled.error_file_id
  ? (await (await client.files.content(cancelled.error_file_id)).text()).split("\n").filter(Boolean)
    .map((text) => JSON.parse(text).error?.code ?? JSON.parse(text).response?.status_code)
  : [];
seen.cancelledOutput = cancelled.output_file_id
  ? (await (await client.files.content(cancelled.output_file_id)).text()).split("\n").filter(Boolean).length
  : 0;

seen.listed = [];
for await (const item of client.batches.list({ limit: 1 })) seen.listed.push(item.id);

seen.missing = await refusal(client.batches.retrieve(`batch_${"0".repeat(32)}`));
const line = JSON.stringify({
  custom_id: "same", method: "POST", url: "/v1/embeddings", body: { model: "text-embedding-3-small", input: "x" },
});
seen.badUpload = await refusal(client.files.create({
  file: await toFile(Buffer.from(`${line}\n${line}\n`), "twice.jsonl"), purpose: "batch",
}));

console.log(JSON.stringify(seen));
