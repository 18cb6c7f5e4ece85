// A tools worker: publishes the catalog of its tools to Redis and runs the calls sent to them.
// Start as many as the load needs; they share the work.
import { createToolsWorker, defineConfig, staticConfig } from "../../src/index.js";
import { tools } from "./greet.js";

const config = staticConfig(defineConfig({ redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379", namespace: "demo" }));
const worker = createToolsWorker({ config, tools, concurrency: 32 });
await worker.start();
console.log(`tools worker ${worker.workerId} ready: ${worker.description}`);

process.once("SIGTERM", () => void worker.stop());
process.once("SIGINT", () => void worker.stop());
