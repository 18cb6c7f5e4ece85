import { errorFields, type Logger } from "../core/log.js";

/**
 * The CLI's OpenTelemetry SDK (docs/observability.md, "Traces"): installed
 * only when the standard variables ask for an OTLP export
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, and
 * `OTEL_SDK_DISABLED` not `true`), and loaded only then. The exporter reads
 * the other standard variables itself (headers, timeout); the service name is
 * `OTEL_SERVICE_NAME`, else `toolfleet-<tier>`. Returns the flush-and-close to
 * run on stop, or undefined when nothing was installed.
 */
export async function startTelemetry(tier: string, logger: Logger): Promise<(() => Promise<void>) | undefined> {
  const env = process.env;
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === "true") return undefined;
  // OTEL_TRACES_EXPORTER: "otlp" (implied by an endpoint) or "none" (spans made, not exported: for measuring).
  const exporter = env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() || (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? "otlp" : "");
  if (!exporter) return undefined;
  if (exporter !== "otlp" && exporter !== "none") {
    logger.warn({ exporter }, `OTEL_TRACES_EXPORTER=${exporter} is not supported here (otlp or none); not tracing`);
    return undefined;
  }
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
  ]);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": env.OTEL_SERVICE_NAME || `toolfleet-${tier}`, "service.instance.id": `${tier}-${process.pid}` }),
    spanProcessors: exporter === "otlp" ? [new BatchSpanProcessor(new OTLPTraceExporter())] : [],
  });
  // The W3C trace-context propagator and an AsyncLocalStorage context manager, for the whole process.
  provider.register();
  if (exporter === "otlp") logger.info({ endpoint: env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT }, "exporting traces with OTLP");
  return async () => {
    try {
      await provider.shutdown(); // flushes what is left
    } catch (err) {
      logger.warn({ ...errorFields(err) }, "could not flush the last traces");
    }
  };
}
