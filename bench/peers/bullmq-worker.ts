// The BullMQ side of the peer, in its own process: one Worker whose processor
// returns the job's text (the return value travels back in the "completed" event).
import { Worker } from "bullmq";
import type { BullmqWorkerConfig, EchoJob } from "./bullmq.js";
import { onStop, readConfig, signalReady } from "./child.js";

const { queueName, prefix, connection, concurrency } = readConfig<BullmqWorkerConfig>();

const worker = new Worker<EchoJob, string>(queueName, (job) => Promise.resolve(job.data.text), {
  connection,
  prefix,
  concurrency,
});
// BullMQ's docs: without an 'error' listener a connection error is an unhandled event.
worker.on("error", (err) => console.error("bullmq worker:", err));

await worker.waitUntilReady();
onStop(() => worker.close());
signalReady();
