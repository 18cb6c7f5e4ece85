import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { SpanStatusCode, context, propagation, trace } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { rejected } from "../../src/core/errors.js";
import { inSpan } from "../../src/core/tracing.js";

// inSpan is not an async function (one promise fewer per span on the call path, docs/observability.md):
// these check it still behaves as one — a throw becomes a rejection, and the span always ends.
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

const spanNamed = (name: string) => {
  const span = exporter.getFinishedSpans().find((s) => s.name === name);
  assert.ok(span, `span ${name} ended`);
  return span;
};

test("inSpan: a work that throws at once gives a rejected promise, not a throw, and its span ends failed", async () => {
  const boom = new Error("boom");
  const running = inSpan("throws at once", "internal", {}, () => {
    throw boom;
  });
  assert.ok(running instanceof Promise);
  await assert.rejects(running, (err) => err === boom);
  const span = spanNamed("throws at once");
  assert.equal(span.status.code, SpanStatusCode.ERROR);
  assert.equal(span.status.message, "boom");
  assert.equal(span.events[0]?.name, "exception");
});

test("inSpan: a rejection passes through as it is, and the span ends failed; a value ends it unmarked", async () => {
  await assert.rejects(
    inSpan("rejects", "client", {}, () => rejected("not an Error")),
    (err) => err === "not an Error",
  );
  assert.equal(spanNamed("rejects").status.code, SpanStatusCode.ERROR);
  const value = await inSpan("resolves", "server", { "toolfleet.tool": "t" }, (span) => {
    assert.ok(span.isRecording());
    return Promise.resolve(42);
  });
  assert.equal(value, 42);
  const span = spanNamed("resolves");
  assert.equal(span.status.code, SpanStatusCode.UNSET);
  assert.equal(span.attributes["toolfleet.tool"], "t");
});

test("inSpan: work runs with its span active, and a child made after an await is its child", async () => {
  await inSpan("parent", "internal", {}, async () => {
    await new Promise((resolve) => setImmediate(resolve));
    await inSpan("child", "internal", {}, () => Promise.resolve());
  });
  const parent = spanNamed("parent");
  const child = spanNamed("child");
  assert.equal(child.parentSpanContext?.spanId, parent.spanContext().spanId);
  assert.equal(child.spanContext().traceId, parent.spanContext().traceId);
});

test("inSpan: a work that answers with a plain value (not a promise) resolves with it and ends its span", async () => {
  // An async wrapper's await took a plain value; a bare .then on it would throw.
  const work = (() => 42) as unknown as () => Promise<number>;
  assert.equal(await inSpan("plain value", "internal", {}, work), 42);
  spanNamed("plain value");
});
