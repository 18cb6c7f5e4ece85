// Peer: Moleculer 0.14 with its Redis transporter. The caller and the worker are two
// brokers (nodes) in one namespace; the worker's "bench" service has an `echo` action.
// One call() is broker.call("bench.echo"): a request published on Redis pub/sub to the
// worker node's channel and its response published back. Pub/sub keeps no keys, so
// there is nothing to delete on close.
import { ServiceBroker, type BrokerOptions } from "moleculer";
import type { Subject } from "../harness.js";
import { forkWorker, stopWorker } from "./child.js";

export interface EchoParams {
  text: string;
}

/** What the parent hands the worker process. */
export interface MoleculerWorkerConfig {
  namespace: string;
}

/** Options both brokers use; the worker imports this too, so the two ends can't drift. */
export function brokerOptions(namespace: string, nodeID: string): BrokerOptions {
  return {
    // A namespace per run: its channels (MOL-<namespace>.*) can't meet another run's.
    namespace,
    nodeID,
    transporter: { type: "Redis", options: { host: "127.0.0.1", port: 6379 } },
    // JSON is Moleculer's default serializer; the faster ones need extra packages.
    serializer: "JSON",
    logger: false,
    metrics: false,
    tracing: false,
    // A lost request should fail the run, not hang it (the default 0 waits forever).
    requestTimeout: 30_000,
    // No SIGINT/SIGTERM/exit handlers: the bench process and forkWorker own its lifecycle.
    skipProcessEventRegistration: true,
  };
}

export async function start(): Promise<Subject> {
  const namespace = `toolfleet-bench-${process.pid}-${Date.now()}`;
  const { child } = await forkWorker(new URL("./moleculer-worker.js", import.meta.url), {
    namespace,
  } satisfies MoleculerWorkerConfig);

  const broker = new ServiceBroker(brokerOptions(namespace, `caller-${process.pid}`));
  try {
    await broker.start();
    // Ready means this node has discovered the worker's service, not just connected.
    await broker.waitForServices("bench", 15_000);
  } catch (err) {
    await broker.stop();
    await stopWorker(child);
    throw err;
  }

  const params: EchoParams = { text: "x".repeat(100) };
  return {
    name: "moleculer",
    workerPids: child.pid === undefined ? [] : [child.pid],
    call: () => broker.call<string, EchoParams>("bench.echo", params),
    async close() {
      await broker.stop();
      await stopWorker(child);
    },
  };
}
