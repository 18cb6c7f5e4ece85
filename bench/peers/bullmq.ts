// Peer: BullMQ. The caller holds a Queue (to add jobs) and a QueueEvents (to hear
// "completed"); a Worker in a child process runs the echo. One call() is one job:
// queue.add, then job.waitUntilFinished(queueEvents) for its return value.
import { Queue, QueueEvents, type ConnectionOptions, type DefaultJobOptions } from "bullmq";
import type { Subject } from "../harness.js";
import { forkWorker, stopWorker } from "./child.js";

export interface EchoJob {
  text: string;
}

/** What the parent hands the worker process. */
export interface BullmqWorkerConfig {
  queueName: string;
  prefix: string;
  connection: { host: string; port: number };
  concurrency: number;
}

// All keys of a run live under `toolfleet-bench:<queueName>:*`; obliterate() removes them.
const PREFIX = "toolfleet-bench";
// Jobs one Worker runs at once; at least the throughput run's 64 in flight, so the
// worker never holds jobs back and the comparison is fair.
const WORKER_CONCURRENCY = 64;

// Auto-removal as BullMQ's docs advise so Redis does not grow with finished jobs:
// keep the last 1000 completed and 1000 failed (obliterate() removes those on close);
// attempts stays at its default 1. Not `removeOnComplete: true`: waitUntilFinished()
// checks the job's state once after subscribing, and a job the worker already finished
// and deleted reads as "Missing key ... isFinished" and rejects the call (seen here
// within the first few sequential calls). 1000 is far more than the 64 in flight,
// so a job outlives its caller's check.
const JOB_OPTIONS: DefaultJobOptions = { removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } };

// A lost job should fail the run, not hang it.
const WAIT_TTL_MS = 30_000;

export async function start(): Promise<Subject> {
  const queueName = `echo-${process.pid}-${Date.now()}`;
  const connection = { host: "127.0.0.1", port: 6379 } satisfies ConnectionOptions;
  const config: BullmqWorkerConfig = { queueName, prefix: PREFIX, connection, concurrency: WORKER_CONCURRENCY };

  const queue = new Queue<EchoJob, string>(queueName, { connection, prefix: PREFIX, defaultJobOptions: JOB_OPTIONS });
  const events = new QueueEvents(queueName, { connection, prefix: PREFIX });
  // Each waiting call adds a 'closing' listener on the queue; 64 in flight trip Node's
  // default limit of 10 and print a (harmless) "possible leak" warning, again and again.
  queue.setMaxListeners(0);
  // Removes every key of this run and closes the caller's Redis connections.
  const teardown = async (): Promise<void> => {
    await queue.obliterate({ force: true });
    await events.close();
    await queue.close();
  };
  let child;
  try {
    [{ child }] = await Promise.all([
      forkWorker(new URL("./bullmq-worker.js", import.meta.url), config),
      queue.waitUntilReady(),
      // QueueEvents must be listening before the first add, or that job's event is missed.
      events.waitUntilReady(),
    ]);
  } catch (err) {
    await teardown();
    throw err;
  }

  const text = "x".repeat(100);
  return {
    name: "bullmq",
    workerPids: child.pid === undefined ? [] : [child.pid],
    async call() {
      const job = await queue.add("echo", { text });
      return job.waitUntilFinished(events, WAIT_TTL_MS);
    },
    async close() {
      await stopWorker(child); // first, so no job is running when the keys go
      await teardown();
    },
  };
}
