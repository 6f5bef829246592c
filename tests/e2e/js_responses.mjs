// Every Responses operation (and models.retrieve) with the official JavaScript SDK, as an
// application makes them:
//
//   node tests/e2e/js_responses.mjs BASE_URL MODEL KEY     prints what it saw as one JSON line
//
// Started by tests/e2e/test_responses_api.py, which owns the servers and the assertions. KEY is sent
// as x-functions-key: the gateway's caller identity (whose responses these are).

import OpenAI from "openai";

const [baseURL, model, key] = process.argv.slice(2);
const client = new OpenAI({
  baseURL, apiKey: "local", maxRetries: 0, timeout: 30000, defaultHeaders: { "x-functions-key": key },
});
const seen = {};

async function finished(id) {
  for (let i = 0; i < 200; i++) {
    const response = await client.responses.retrieve(id);
    if (!["queued", "in_progress"].includes(response.status)) return response;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`response ${id} never finished`);
}

async function status(promise) {
  try {
    await promise;
    return 200;
  } catch (error) {
    return [error.status, error.code];
  }
}

const input = [
  { role: "user", content: "first question" },
  { role: "assistant", content: "first answer" },
  { role: "user", content: "second question" },
];
const created = await client.responses.create({ model, input, background: true, max_output_tokens: 200 });
seen.created = created.status;
const done = await finished(created.id);
seen.polled = [done.status, done.output_text.length > 0];
const detailed = await client.responses.retrieve(created.id, {
  include: ["message.output_text.logprobs"], include_obfuscation: false,
});
seen.retrievedWithQuery = detailed.id === created.id;

seen.inputItems = [];
for await (const item of client.responses.inputItems.list(created.id, { order: "asc", limit: 1 })) {
  seen.inputItems.push(item.content[0].text);
}

const resumed = await client.responses.retrieve(created.id, { stream: true, starting_after: 2 });
seen.resumed = [];
for await (const event of resumed) seen.resumed.push([event.sequence_number, event.type]);

const running = await client.responses.create({ model, input: "long", background: true, max_output_tokens: 200 });
const cancelled = await client.responses.cancel(running.id);
seen.cancelled = cancelled.status;

await client.responses.delete(created.id);
seen.afterDelete = await status(client.responses.retrieve(created.id));

seen.model = (await client.models.retrieve(model)).id;
seen.unknownModel = await status(client.models.retrieve("not-a-model"));
console.log(JSON.stringify(seen));
