// The official JavaScript SDK's embeddings call, as an application makes it (no encoding_format:
// the SDK then asks for base64 and decodes every `embedding` as base64, whatever it received).
//
//   node tests/e2e/js_embeddings.mjs BASE_URL MODEL TEXT...     prints the vectors as one JSON line
//
// Started by tests/e2e/test_upstream_fidelity.py, which owns the servers and the assertions.

import OpenAI from "openai";

const [baseURL, model, ...texts] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "local", maxRetries: 0, timeout: 30000 });
const reply = await client.embeddings.create({ model, input: texts });
console.log(JSON.stringify(reply.data.map((item) => Array.from(item.embedding))));
