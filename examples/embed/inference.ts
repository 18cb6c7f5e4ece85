// An inference worker: shows the model the published catalog (no tool handler imported here),
// answers the gateways' chat messages, and routes each call to the tier that runs it.
import { ToolContext, createInferenceWorker, defineConfig, staticConfig } from "../../src/index.js";

const config = staticConfig(defineConfig({ redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379", namespace: "demo", toolsServiceMode: "remote" }));
const worker = createInferenceWorker({ config });
await worker.start();

// A call from code: the identity in the context is what the tools worker will trust.
const ctx = new ToolContext({ platform: "cli", userId: "alice", userName: "Alice" });
const outcome = await worker.registry.execute("greet", { name: "Ada" }, { userId: "alice", ctx });
console.log(outcome.kind, outcome.route, outcome.text); // ok remote Hello, Ada! (from alice)

await worker.stop();
