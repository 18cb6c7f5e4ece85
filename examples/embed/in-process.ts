// The embedded default: one process, no Redis. A console chat (type `/greet {"name":"Ada"}`),
// the LLM tool loop (slash commands only without TOOLFLEET_LLM_API_KEY), every tool here.
import { ConsoleAdapter, createInProcessFleet, loadConfig, staticConfig } from "../../src/index.js";
import { tools } from "./greet.js";

const fleet = createInProcessFleet({ config: staticConfig(loadConfig()), tools, platform: new ConsoleAdapter() });
await fleet.start();

// Calls from code go through the same registry the chat uses.
const outcome = await fleet.registry.execute("greet", { name: "Ada" }, { userId: "me" });
console.log(outcome.kind, outcome.route, outcome.text); // ok local Hello, Ada! (from me)

process.once("SIGINT", () => void fleet.stop());
