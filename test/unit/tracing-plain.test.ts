// inSpan (src/core/tracing.ts) is a .then chain, not an async wrapper.
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

test("inSpan: a work that answers with a plain value (not a promise) resolves with it and ends its span", async () => {
  // An async wrapper's await took a plain value; a bare .then on it would throw.
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
