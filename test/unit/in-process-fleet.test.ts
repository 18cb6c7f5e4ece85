// The embedded default, assembled with createInProcessFleet: no Redis, every tool here.
import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { ToolfleetError, createInProcessFleet, defineConfig, defineTool, staticConfig } from "../../src/index.js";
import { RecordingPlatform, identity } from "../support/chat.js";
import { RecordingLogger, eventually } from "../support/helpers.js";

const greet = defineTool({
  name: "greet",
  description: "Greets someone.",
  parameters: z.object({ name: z.string().min(1) }),
  handler: ({ name }, ctx) => `Hello, ${name}, from ${ctx.userId}`,
});

test("the in-process fleet answers the platform's messages and calls from code, whatever mode the config names", async () => {
  const platform = new RecordingPlatform();
  // A config that says remote (and names a Redis that is not there): the in-process fleet ignores both.
  const config = staticConfig(defineConfig({ toolsServiceMode: "remote", redisUrl: "redis://127.0.0.1:1" }));
  const fleet = createInProcessFleet({ config, logger: new RecordingLogger(), platform, tools: [greet], permissions: { greet: ["alice"] } });
  await fleet.start();
  try {
    const ok = await fleet.registry.execute("greet", { name: "Ada" }, { userId: "alice" });
    assert.deepEqual([ok.kind, ok.route, ok.text], ["ok", "local", "Hello, Ada, from alice"]);
    assert.equal((await fleet.registry.execute("greet", { name: "Ada" }, { userId: "bob" })).kind, "denied");
    platform.user?.({ identity, text: '/greet {"name":"Bo"}' });
    await eventually(() => assert.equal(platform.sent.length, 1));
    assert.match(platform.sent[0]?.message.text ?? "", /Hello, Bo, from alice/);
  } finally {
    await fleet.stop();
  }
});

test("the in-process fleet refuses a platform that does not own its client", () => {
  assert.throws(
    () => createInProcessFleet({ platform: { platform: "x" } as unknown as RecordingPlatform }),
    (err: unknown) => err instanceof ToolfleetError && err.code === "CONFIG_INVALID",
  );
});
