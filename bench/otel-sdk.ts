import { context, propagation, trace } from "@opentelemetry/api";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

/**
 * Installs an OpenTelemetry SDK in this process (no exporter: spans are made and recorded, sent nowhere), as an
 * application would; the returned function shuts it down and frees the API's globals for the next variant.
 */
export function installSdk(): () => Promise<void> {
  const provider = new NodeTracerProvider();
  provider.register();
  return async () => {
    await provider.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  };
}
