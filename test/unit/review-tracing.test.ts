// Review of the `promises` branch: inSpan (src/core/tracing.ts) is no longer an async wrapper.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { context, propagation, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { inSpan } from "../../src/core/tracing.js";

const exporter = new InMemorySpanExporter();
let provider: NodeTracerProvider;
before(() => {
  provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  provider.register();
});
after(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
  propagation.disable();
});

test("inSpan: a work that answers with a plain value (not a promise) resolves with it and ends its span, as on main", async () => {
  // main's async wrapper awaited work(span), which takes a plain value; the branch calls .then on it.
  const work = (() => 42) as unknown as () => Promise<number>;
  let value: unknown;
  try {
    value = await inSpan("plain value", "internal", {}, work);
  } finally {
    assert.ok(
      exporter.getFinishedSpans().some((s) => s.name === "plain value"),
      "span ended",
    );
  }
  assert.equal(value, 42);
});
