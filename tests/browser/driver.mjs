// Browser side of the page tests: drives headless Chromium with playwright-core and prints what it saw.
//
//   node tests/browser/driver.mjs serve '{"chromium": PATH}'       one Chromium for the whole session
//   node tests/browser/driver.mjs <scenario> '<json args>'            one scenario, printing "RESULT {...}"
//
// Started by tests/browser/conftest.py, which owns the servers and asserts on the observations
// printed as the last line. "serve" launches Chromium once (with a fresh temporary profile, which
// playwright's launch makes) and prints its endpoint; each scenario connects to it (args.endpoint)
// and works in a new browser context, as isolated as a fresh profile (own cookies, storage, cache),
// which saves a browser start per test. Without an endpoint a scenario launches its own browser.
// Screenshots go to args.artifacts.

import { readFile } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";

// Debian's chromium, run as root in containers: no sandbox, no GPU, and nothing that phones home.
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

const [scenarioName, rawArgs] = process.argv.slice(2);
const args = JSON.parse(rawArgs ?? "{}");
const shot = (page, suffix) => page.screenshot({
  path: path.join(args.artifacts, `${args.name}-${args.tag ? `${args.tag}-` : ""}${suffix}.png`), fullPage: true,
});

/** Open the page and wait until it has tried to load the model list. */
async function open(page, url) {
  await page.goto(url);
  await page.waitForFunction(() => ["loaded", "error"].includes(document.body.dataset.models), null, { timeout: 15000 });
}

/**
 * Record every change of the last assistant message (text and state) with a timestamp, from inside
 * the page: a MutationObserver sees each DOM update, which polling from outside could miss.
 */
async function watchAssistant(page) {
  await page.evaluate(() => {
    window.__samples = [];
    const read = () => {
      const items = document.querySelectorAll(".msg.assistant");
      const last = items[items.length - 1];
      if (!last) return;
      const sample = { turn: items.length, t: performance.now(), text: last.querySelector(".text").textContent, state: last.dataset.state };
      const prev = window.__samples[window.__samples.length - 1];
      if (!prev || prev.text !== sample.text || prev.state !== sample.state || prev.turn !== sample.turn) window.__samples.push(sample);
    };
    new MutationObserver(read).observe(document.getElementById("conversation"), {
      subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ["data-state"],
    });
  });
}

const lastAssistant = () => {
  const items = document.querySelectorAll(".msg.assistant");
  const last = items[items.length - 1];
  return last ? { text: last.querySelector(".text").textContent, state: last.dataset.state } : null;
};

async function waitWords(page, words) {
  await page.waitForFunction((n) => {
    const items = document.querySelectorAll(".msg.assistant");
    const last = items[items.length - 1];
    return last?.dataset.state === "streaming" && last.querySelector(".text").textContent.split(/\s+/).filter(Boolean).length >= n;
  }, words, { timeout: 15000 });
}

/** Load args.lines (one a line) into the jobs panel as a file; return what the page counted once it has. */
async function loadLines(page, filename) {
  await page.setInputFiles("#job-file", {
    name: filename, mimeType: "text/plain", buffer: Buffer.from(`${args.lines.join("\n")}\n`),
  });
  await page.waitForFunction((n) => document.getElementById("job-lines").textContent.startsWith(`${n} `), args.lines.length);
  return page.textContent("#job-lines");
}

/**
 * Read the jobs panel every 50 ms until its status is one of `ends`, an error shows, or args.timeoutMs
 * passes; keeps each state in which one of the `watched` fields changed, and the last status.
 */
async function watchPanel(page, ends, watched) {
  const samples = [];
  const deadline = Date.now() + (args.timeoutMs ?? 40000);
  let status = "";
  while (Date.now() < deadline) {
    const sample = await page.evaluate(() => ({
      value: document.getElementById("job-progress").value,
      percent: document.getElementById("job-percent").textContent,
      status: document.getElementById("job-state").textContent,
      counts: document.getElementById("job-counts").textContent,
      visible: !document.getElementById("job-view").hidden,
      error: document.getElementById("job-error").hidden ? "" : document.getElementById("job-error").innerText,
    }));
    const prev = samples[samples.length - 1];
    if (!prev || watched.some((key) => prev[key] !== sample[key])) samples.push(sample);
    status = sample.status;
    if (ends.includes(status) || sample.error) break;
    await page.waitForTimeout(50);
  }
  return { samples, status };
}

/** Click a download button; return the suggested file name and the file's non-blank lines. */
async function downloadLines(page, selector, suffix) {
  const [download] = await Promise.all([page.waitForEvent("download"), page.click(selector)]);
  const file = path.join(args.artifacts, `${args.name}-${suffix}.jsonl`);
  await download.saveAs(file); // the browser may be remote (serve mode): copy the file over
  const lines = (await readFile(file, "utf8")).split("\n").filter((l) => l.trim());
  return { filename: download.suggestedFilename(), lines };
}

const scenarios = {
  /** Send prompts one after the other; watch every reply grow; keep the request bodies. */
  async chat(page) {
    const bodies = [];
    page.on("request", (req) => {
      if (req.method() === "POST" && /\/v1\/(chat\/completions|responses)$/.test(req.url())) bodies.push(req.postDataJSON());
    });
    await open(page, args.url);
    if (args.api === "responses") await page.check('input[name="api"][value="responses"]');
    await watchAssistant(page);
    const statuses = [];
    for (const [index, prompt] of args.prompts.entries()) {
      await page.fill("#prompt", prompt);
      await page.press("#prompt", "Enter");
      if (index === 0) {
        await waitWords(page, 6);
        await shot(page, "streaming");
      }
      await page.waitForFunction((n) => document.querySelectorAll('.msg.assistant[data-state="done"]').length === n,
        index + 1, { timeout: 20000 });
      statuses.push(await page.textContent("#chat-status"));
    }
    await shot(page, "done");
    return {
      samples: await page.evaluate(() => window.__samples),
      replies: await page.$$eval(".msg.assistant .text", (els) => els.map((e) => e.textContent)),
      users: await page.$$eval(".msg.user .text", (els) => els.map((e) => e.textContent)),
      statuses,
      bodies,
    };
  },

  /** Start a reply, press Stop mid-stream, and check nothing more arrives. */
  async stop(page) {
    await open(page, args.url);
    await watchAssistant(page);
    await page.fill("#prompt", args.prompt);
    await page.click("#send");
    await waitWords(page, 4);
    const beforeStop = await page.evaluate(lastAssistant);
    await page.click("#stop");
    await page.waitForFunction(() => document.querySelector(".msg.assistant")?.dataset.state === "stopped", null, { timeout: 5000 });
    const atStop = await page.evaluate(lastAssistant);
    await page.waitForTimeout(args.settleMs ?? 1000);
    const later = await page.evaluate(lastAssistant);
    await shot(page, "stopped");
    return {
      beforeStop, atStop, later,
      status: await page.textContent("#chat-status"),
      sendEnabled: await page.isEnabled("#send"),
      stopEnabled: await page.isEnabled("#stop"),
      samples: await page.evaluate(() => window.__samples),
    };
  },

  /** Send a message that fails; return the error the user sees. */
  async chatError(page) {
    await open(page, args.url);
    if (args.api === "responses") await page.check('input[name="api"][value="responses"]');
    if (args.model) await page.fill("#chat-model", args.model);
    await page.fill("#prompt", args.prompt);
    await page.click("#send");
    await page.waitForSelector("#chat-error:not([hidden])", { timeout: 15000 });
    await shot(page, "error");
    return {
      error: await page.innerText("#chat-error"),
      kind: await page.getAttribute("#chat-error", "data-kind"),
      prompt: await page.inputValue("#prompt"),
      messages: await page.locator(".msg").count(),
      sendEnabled: await page.isEnabled("#send"),
    };
  },

  /** Upload a file of lines, submit the job, watch progress to the end, download the results. */
  async job(page) {
    await open(page, args.url);
    const counted = await loadLines(page, "inputs.txt");
    await page.click("#job-submit");
    const { samples, status } = await watchPanel(page, ["succeeded", "failed"], ["value", "status", "error"]);
    await shot(page, "job");
    const result = { counted, samples, status, jobId: await page.textContent("#job-id") };
    if (status !== "succeeded") return result;
    await page.waitForFunction(() => !document.getElementById("job-download").disabled);
    const { filename, lines } = await downloadLines(page, "#job-download", "results");
    return { ...result, filename, rows: lines.length, firstRow: JSON.parse(lines[0]) };
  },

  /** The page on another origin: does it connect (and chat), or show why not? */
  async crossOrigin(page) {
    await open(page, args.url);
    const models = await page.getAttribute("body", "data-models");
    const result = {
      origin: await page.evaluate(() => location.origin),
      models,
      connection: await page.textContent("#connection"),
      banner: (await page.isVisible("#banner")) ? await page.innerText("#banner") : "",
      modelOptions: await page.$$eval("#chat-models option", (els) => els.map((e) => e.value)),
    };
    if (models === "loaded" && args.prompt) {
      await watchAssistant(page);
      await page.fill("#prompt", args.prompt);
      await page.click("#send");
      await page.waitForFunction(() => document.querySelector(".msg.assistant")?.dataset.state === "done", null, { timeout: 20000 });
      result.reply = await page.textContent(".msg.assistant .text");
      result.samples = await page.evaluate(() => window.__samples);
    }
    await shot(page, models === "loaded" ? "allowed" : "refused");
    return result;
  },
};

/**
 * One turn with Azure-specific extras (reasoning, an MCP server, content-filter markers): records
 * every state of the reply's reasoning summary, tool lines and text as they change.
 */
scenarios.extras = async (page) => {
  const bodies = [];
  page.on("request", (req) => {
    if (req.method() === "POST" && /\/v1\/(chat\/completions|responses)$/.test(req.url())) bodies.push(req.postDataJSON());
  });
  await open(page, args.url);
  if (args.api === "responses") await page.check('input[name="api"][value="responses"]');
  if (args.reasoning) await page.selectOption("#reasoning", args.reasoning);
  if (args.mcpUrl) await page.fill("#mcp-url", args.mcpUrl);
  await page.evaluate(() => {
    window.__extras = [];
    const read = () => {
      const item = document.querySelector(".msg.assistant");
      if (!item) return;
      const box = item.querySelector(".reasoning");
      const sample = {
        t: performance.now(),
        state: item.dataset.state,
        text: item.querySelector(".text").textContent,
        reasoning: box?.querySelector(".reasoning-text").textContent ?? null,
        reasoningOpen: box ? box.open : null,
        tools: [...item.querySelectorAll(".tools li")].map((li) => ({ type: li.dataset.type, status: li.dataset.status, text: li.textContent })),
      };
      const prev = window.__extras[window.__extras.length - 1];
      if (!prev || JSON.stringify({ ...prev, t: 0 }) !== JSON.stringify({ ...sample, t: 0 })) window.__extras.push(sample);
    };
    new MutationObserver(read).observe(document.getElementById("conversation"), {
      subtree: true, childList: true, characterData: true, attributes: true,
    });
  });
  await page.fill("#prompt", args.prompt);
  await page.click("#send");
  if (args.reasoning && args.api === "responses") {
    await page.waitForFunction(() => (document.querySelector(".reasoning-text")?.textContent ?? "").split(" ").length >= 4);
    await shot(page, "reasoning");
  }
  if (args.mcpUrl) {
    await page.waitForSelector(".tools li");
    await shot(page, "tools");
  }
  await page.waitForFunction(() => ["done", "filtered"].includes(document.querySelector(".msg.assistant")?.dataset.state),
    null, { timeout: 20000 });
  await shot(page, "done");
  const result = {
    samples: await page.evaluate(() => window.__extras),
    state: await page.getAttribute(".msg.assistant", "data-state"),
    status: await page.textContent("#chat-status"),
    error: (await page.isVisible("#chat-error")) ? await page.innerText("#chat-error") : "",
    errorKind: await page.getAttribute("#chat-error", "data-kind"),
    bodies,
  };
  if (await page.locator(".reasoning summary").count()) {
    result.summaryLabel = await page.textContent(".reasoning summary");
    await page.click(".reasoning summary");
    result.openAfterClick = await page.evaluate(() => document.querySelector(".reasoning").open);
    await shot(page, "reasoning-opened");
  }
  return result;
};

/**
 * A crafted link (?gateway= somewhere else): where does the page send requests and the key?
 * Chats once, then tries to switch to args.typed by hand; returns every URL the page requested.
 */
scenarios.craftedLink = async (page) => {
  const requested = [];
  page.on("request", (req) => requested.push({ url: req.url(), key: req.headers()["x-functions-key"] ?? null }));
  await open(page, args.url);
  await page.waitForSelector("#banner:not([hidden])", { timeout: 5000 }).catch(() => {});
  const result = {
    gatewayField: await page.inputValue("#gateway"),
    banner: (await page.isVisible("#banner")) ? await page.innerText("#banner") : "",
    bannerKind: await page.getAttribute("#banner", "data-kind"),
  };
  await page.fill("#key", args.key);
  await page.click("#connect");
  await page.waitForFunction(() => document.body.dataset.models === "loaded", null, { timeout: 15000 });
  await page.fill("#prompt", args.prompt);
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector(".msg.assistant")?.dataset.state === "done", null, { timeout: 20000 });
  result.reply = await page.textContent(".msg.assistant .text");
  await page.fill("#gateway", args.typed);
  await page.click("#connect");
  await page.waitForFunction(() => document.body.dataset.models === "error", null, { timeout: 15000 });
  result.typedBanner = await page.innerText("#banner");
  result.saved = await page.evaluate(() => localStorage.getItem("gateway-url"));
  await shot(page, "crafted");
  return { ...result, requested };
};

/**
 * The jobs panel as a Batch API client: pick "Batch", load args.lines (texts, or JSONL request
 * lines) from a file, submit, record every state of status, progress and request counts while it
 * polls, then download the output file (and the error file when there is one).
 */
scenarios.batch = async (page) => {
  const requested = [];
  page.on("request", (req) => requested.push(`${req.method()} ${new URL(req.url()).pathname}`));
  await open(page, args.url);
  await page.check('input[name="job-kind"][value="batch"]');
  const counted = await loadLines(page, args.filename ?? "inputs.txt");
  const button = await page.textContent("#job-submit");
  await page.click("#job-submit");
  const { samples, status } = await watchPanel(page, ["completed", "failed", "cancelled", "expired"],
    ["value", "status", "counts", "error"]);
  await shot(page, "batch");
  const result = { counted, button, samples, status, batchId: await page.textContent("#job-id"), requested };
  if (status !== "completed") return result;
  const saved = async (selector, suffix) => {
    const { filename, lines } = await downloadLines(page, selector, suffix);
    // Summarised: whole vectors would make the RESULT line megabytes long.
    const rows = lines.map((l) => JSON.parse(l)).map((row) => ({
      custom_id: row.custom_id, status: row.response?.status_code ?? null, error: row.error?.code ?? null,
      dims: row.response?.body?.data?.[0]?.embedding?.length ?? null,
    }));
    return { filename, rows };
  };
  await page.waitForFunction(() => !document.getElementById("job-download").disabled);
  result.output = await saved("#job-download", "output");
  result.errorsShown = !(await page.isHidden("#job-errors"));
  if (result.errorsShown) result.errors = await saved("#job-errors", "errors");
  return result;
};

const launchOptions = { executablePath: args.chromium, headless: true, args: FLAGS };

if (scenarioName === "serve") {
  // Lives until pytest closes our stdin (or ends the process): then the browser goes too.
  const server = await chromium.launchServer(launchOptions);
  console.log(`ENDPOINT ${server.wsEndpoint()}`);
  const stop = async () => { await server.close().catch(() => {}); process.exit(0); };
  process.stdin.on("end", stop);
  process.stdin.resume();
  process.on("SIGTERM", stop);
} else {
  const scenario = scenarios[scenarioName];
  if (!scenario) {
    console.error(`unknown scenario ${scenarioName}; known: serve, ${Object.keys(scenarios).join(", ")}`);
    process.exit(2);
  }
  const browser = args.endpoint ? await chromium.connect(args.endpoint) : await chromium.launch(launchOptions);
  let exitCode = 0;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
    const page = await context.newPage();
    const pageErrors = [];
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    page.setDefaultTimeout(15000);
    try {
      const result = await scenario(page);
      console.log(`RESULT ${JSON.stringify({ ...result, pageErrors })}`);
    } catch (err) {
      exitCode = 1;
      console.error(err?.stack ?? String(err));
      if (pageErrors.length) console.error(`page errors:\n${pageErrors.join("\n")}`);
      await shot(page, "failure").catch(() => {});
    } finally {
      await context.close().catch(() => {});
    }
  } finally {
    await browser.close();
  }
  process.exit(exitCode);
}
