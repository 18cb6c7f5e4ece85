import { SpanKind, SpanStatusCode, context, propagation, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";
import { rejected } from "./errors.js";

/**
 * OpenTelemetry spans across the fleet (docs/observability.md, "Traces").
 * Only `@opentelemetry/api`: without an SDK installed (the application's, or
 * the CLI's when `OTEL_EXPORTER_OTLP_ENDPOINT` is set) every call here is a
 * no-op, and no `traceparent` goes on the wire.
 */
const tracer = () => trace.getTracer("toolfleet");

/** A W3C `traceparent`: version, trace id, parent span id, flags. */
export const TRACEPARENT_PATTERN = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The `traceparent` of the active span, to send with a message; undefined when there is none (tracing off). */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  const value = carrier.traceparent;
  return value && TRACEPARENT_PATTERN.test(value) ? value : undefined;
}

/** The context a message's `traceparent` names (the active one when it has none). */
export function contextOf(traceparent: string | undefined): Context {
  if (!traceparent) return context.active();
  return propagation.extract(context.active(), { traceparent });
}

export type SpanRole = "server" | "client" | "consumer" | "internal";
const KINDS: Record<SpanRole, SpanKind> = { server: SpanKind.SERVER, client: SpanKind.CLIENT, consumer: SpanKind.CONSUMER, internal: SpanKind.INTERNAL };

/**
 * Runs `work` in a new span (a child of `parent`, else of the active span), ends it when `work` settles,
 * and marks it failed when `work` throws. `work` may add attributes as it learns them (route, outcome).
 * One `.then` rather than an async wrapper: with an OpenTelemetry SDK's context manager, Node 20 runs a hook
 * for every promise, and this sits on every call's path (docs/observability.md, "What it costs").
 */
export function inSpan<T>(name: string, role: SpanRole, attributes: Attributes, work: (span: Span) => Promise<T>, parent?: Context): Promise<T> {
  return tracer().startActiveSpan(name, { kind: KINDS[role], attributes }, parent ?? context.active(), (span) => {
    let running: Promise<T>;
    try {
      running = work(span);
    } catch (err) {
      failed(span, err);
      return rejected(err);
    }
    // Promise.resolve: `work` may return a value itself (no promise made for one that is a promise).
    return Promise.resolve(running).then(
      (value) => {
        span.end();
        return value;
      },
      (err: unknown) => {
        failed(span, err);
        throw err;
      },
    );
  });
}

/** Records why a span's work failed, and ends the span. */
function failed(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  span.end();
}

/** Marks a span failed when a call ended other than `ok` (the call itself returned, as tool failures do). */
export function endedAs(span: Span, kind: string, attributes: Attributes = {}): void {
  span.setAttributes({ "toolfleet.outcome": kind, ...attributes });
  if (kind !== "ok" && kind !== "background") span.setStatus({ code: SpanStatusCode.ERROR, message: kind });
}

/** A span for work already done here and now (a call the LLM loop answers itself): started and ended at once. */
export function recordSpan(name: string, kind: string, attributes: Attributes): void {
  const span = tracer().startSpan(name, { kind: SpanKind.INTERNAL, attributes }, context.active());
  endedAs(span, kind);
  span.end();
}
