// Long tools: progress, cancellation, a structured result, the tool's own time limit and its idempotency key.
import { z } from "zod";
import { defineTool, toolResult, ToolRegistry } from "../../src/index.js";

const report = defineTool({
  name: "build_report",
  description: "Builds a report page by page.",
  parameters: z.object({ pages: z.number().int().min(1).max(50) }),
  outputSchema: z.object({ pages: z.number(), words: z.number() }),
  timeoutMs: 60_000, // its own limit; progress extends it, up to the call's maxTotalTimeoutMs
  annotations: { readOnlyHint: true }, // MCP's names work too
  handler: async ({ pages }, ctx) => {
    let words = 0;
    for (let page = 1; page <= pages; page++) {
      ctx.signal.throwIfAborted(); // aborted when the caller gives up: stop before the next side effect
      await new Promise((r) => setTimeout(r, 50));
      words += 250;
      ctx.progress({ progress: page, total: pages, message: `page ${page}` });
    }
    // ctx.idempotencyKey: the same on every delivery of this call; pass it on to outside APIs.
    return toolResult({
      content: [{ type: "text", text: `${pages} pages, ${words} words (request ${ctx.idempotencyKey})` }],
      structuredContent: { pages, words },
    });
  },
});

const registry = new ToolRegistry().register(report);
const stop = new AbortController();
const outcome = await registry.execute(
  "build_report",
  { pages: 5 },
  { userId: "me", signal: stop.signal, onProgress: (p) => console.log(`${p.progress}/${p.total ?? "?"} ${p.message ?? ""}`) },
);
console.log(outcome.kind, outcome.text, outcome.result?.structuredContent); // ok 5 pages, 1250 words (request …) { pages: 5, words: 1250 }
await registry.close();
