import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { z } from "zod";
import { z as z3 } from "zod/v3";
import { adminStats, calculator, discordReact, echo, examplePermissions, exampleTools, injectTool, sendImage, slowTask } from "../../examples/tools.js";
import { ToolContext, ToolRegistry, ToolfleetError, defineConfig, defineTool, staticConfig, type PlatformAdapter } from "../../src/index.js";
import { RecordingLogger } from "../support/helpers.js";
import { MAX_CALL_TIMEOUT_MS } from "../../src/protocol.js";

function registry(options: { logger?: RecordingLogger; backgroundThreshold?: number; toolsExecTimeout?: number } = {}): ToolRegistry {
  const config = staticConfig(defineConfig({ backgroundThreshold: options.backgroundThreshold ?? 0, toolsExecTimeout: options.toolsExecTimeout ?? 120 }));
  const reg = new ToolRegistry({ config, logger: options.logger ?? new RecordingLogger() });
  reg.register(...exampleTools);
  reg.setPermissions(examplePermissions);
  return reg;
}

describe("defineTool", () => {
  test("accepts OpenAI function names and refuses others", () => {
    for (const name of ["a", "get_weather", "tool-2", "X".repeat(64)]) {
      assert.doesNotThrow(() => defineTool({ name, description: "", parameters: z.object({}), handler: () => "" }));
    }
    for (const name of ["", "has space", "dot.ted", "ünicode", "X".repeat(65), "slash/x"]) {
      assert.throws(
        () => defineTool({ name, description: "", parameters: z.object({}), handler: () => "" }),
        (err: unknown) => err instanceof ToolfleetError && err.code === "TOOL_NAME_INVALID",
        name,
      );
    }
  });

  test("registering a name twice is an error", () => {
    const reg = new ToolRegistry({ logger: new RecordingLogger() });
    reg.register(echo);
    assert.throws(
      () => reg.register(echo),
      (err: unknown) => err instanceof ToolfleetError && err.code === "TOOL_DUPLICATE" && /'echo'/.test(err.message),
    );
  });

  test("a zod schema becomes an input-side JSON Schema; defaults are applied for the handler", async () => {
    assert.deepEqual(sendImage.parameters.required, undefined);
    assert.equal(sendImage.parameters.type, "object");
    assert.equal("$schema" in sendImage.parameters, false);
    const reg = registry();
    const ctx = new ToolContext();
    assert.equal(await reg.call("send_image", {}, { ctx }), `Sent gradient.png (64x64, ${ctx.sentFiles[0]?.data.length} bytes).`);
  });

  test("a parameters schema that is not an object schema is refused", () => {
    assert.throws(
      () => defineTool({ name: "bad", description: "", parameters: z.string() as never, handler: () => "" }),
      (err: unknown) => err instanceof ToolfleetError && err.code === "TOOL_DEFINITION_INVALID",
    );
    assert.throws(() => defineTool({ name: "bad", description: "", parameters: { type: "array" }, handler: () => "" }), /must have type "object"/);
    assert.throws(
      () => defineTool({ name: "bad", description: "", parameters: { type: "object", properties: { a: { type: "nonsense" } } }, handler: () => "" }),
      /invalid parameters schema/,
    );
  });

  // zod 4 ships zod 3's API as "zod/v3": the same objects a project with zod 3 installed passes in.
  test("a zod 3 schema is refused with the fix (install zod 4), not as a JSON Schema without type object", () => {
    for (const parameters of [z3.object({ city: z3.string() }), z3.string()]) {
      assert.throws(
        () => defineTool({ name: "weather", description: "", parameters: parameters as never, handler: () => "" }),
        (err: unknown) =>
          err instanceof ToolfleetError &&
          err.code === "TOOL_DEFINITION_INVALID" &&
          /^Tool 'weather': parameters is a zod 3 schema \(Zod(Object|String)\), and toolfleet needs zod 4: run npm install zod@\^4 and import \{ z \} from "zod"/.test(
            err.message,
          ) &&
          !/type "object"/.test(err.message),
      );
    }
    // A JSON Schema that merely has a property named _def is still read as a JSON Schema.
    assert.doesNotThrow(() => defineTool({ name: "plain", description: "", parameters: { type: "object", _def: {} }, handler: () => "" }));
  });

  test("flags and annotations are kept", () => {
    assert.equal(echo.allowRepeat, true);
    assert.equal(echo.noBackground, false);
    assert.deepEqual(echo.annotations, { readOnly: true, idempotent: true });
    assert.equal(calculator.allowRepeat, false);
  });
});

describe("read surface", () => {
  const reg = registry();

  test("OpenAI tool dicts, all and by names", () => {
    const all = reg.getOpenAITools();
    assert.equal(all.length, exampleTools.length);
    assert.deepEqual(all[0], { type: "function", function: { name: "echo", description: echo.description, parameters: echo.parameters } });
    const some = reg.getOpenAIToolsByNames(new Set(["calculator", "nope", "echo"]));
    assert.deepEqual(
      some.map((t) => t.function.name),
      ["calculator", "echo"],
    );
  });

  test("names, repeat-allowed names, listing, size", () => {
    assert.deepEqual([...reg.toolNames()].sort(), exampleTools.map((t) => t.name).sort());
    assert.deepEqual([...reg.repeatAllowedTools()].sort(), ["echo", "inject_tool"]);
    assert.equal(reg.listTools().length, exampleTools.length);
    assert.equal(reg.size, exampleTools.length);
    assert.equal(reg.hasTools, true);
    assert.equal(new ToolRegistry({ logger: new RecordingLogger() }).hasTools, false);
    assert.ok(reg.taskManager);
  });

  test("isAllowed: no entry is open, '*' is open, otherwise the user must be listed", () => {
    reg.setPermissions({ admin_stats: ["admin"], echo: ["*"], calculator: [] });
    assert.equal(reg.isAllowed("current_time", "anyone"), true);
    assert.equal(reg.isAllowed("echo", "anyone"), true);
    assert.equal(reg.isAllowed("admin_stats", "admin"), true);
    assert.equal(reg.isAllowed("admin_stats", "alice"), false);
    assert.equal(reg.isAllowed("calculator", "alice"), false);
    assert.deepEqual(reg.getPermissions(), { admin_stats: ["admin"], echo: ["*"], calculator: [] });
  });
});

describe("call", () => {
  test("runs a tool and returns its text; an object result becomes JSON", async () => {
    const reg = registry();
    assert.equal(await reg.call("echo", { text: "hi", repeat: 2, uppercase: true }), "HIHI");
    assert.equal(await reg.call("calculator", { a: 6, op: "multiply", b: 7 }), '{"result":42}');
  });

  test("an unknown tool gets a message naming it", async () => {
    assert.equal(await registry().call("no_such_tool", {}), "Unknown tool 'no_such_tool': no tool of that name is registered.");
  });

  test("a denied user gets the exact denial string, and the handler does not run", async () => {
    let ran = 0;
    const reg = new ToolRegistry({ logger: new RecordingLogger() });
    reg.register(defineTool({ name: "secret", description: "", parameters: z.object({}), handler: () => String(++ran) }));
    reg.setPermissions({ secret: ["admin"] });
    assert.equal(await reg.call("secret", {}, { userId: "mallory" }), "Permission denied: user 'mallory' is not allowed to run tool 'secret'.");
    assert.equal(ran, 0);
    assert.equal(await reg.call("secret", {}, { userId: "admin" }), "1");
    assert.equal(await registry().call("admin_stats", {}, { userId: "alice" }), "Permission denied: user 'alice' is not allowed to run tool 'admin_stats'.");
  });

  test("bad arguments name each bad field (zod and JSON Schema tools), and the handler does not run", async () => {
    const reg = registry();
    const zodText = await reg.call("echo", { text: 5, repeat: 0 });
    assert.match(zodText, /^Invalid arguments for tool 'echo': /);
    assert.match(zodText, /text: .*expected string/);
    assert.match(zodText, /repeat: .*>=1/);
    const jsonText = await reg.call("current_time", { timezone: 3, extra: true });
    assert.match(jsonText, /^Invalid arguments for tool 'current_time': /);
    assert.match(jsonText, /timezone: must be string/);
    assert.match(jsonText, /extra: is not a known parameter/);
    let ran = 0;
    const strict = new ToolRegistry({ logger: new RecordingLogger() }).register(
      defineTool({
        name: "needs_a",
        description: "",
        parameters: { type: "object", properties: { a: { type: "integer" } }, required: ["a"] },
        handler: () => String(++ran),
      }),
    );
    assert.equal(await strict.call("needs_a", {}), "Invalid arguments for tool 'needs_a': a: is required. Fix these fields and call it again.");
    assert.equal(
      await strict.call("needs_a", "not an object"),
      "Invalid arguments for tool 'needs_a': (arguments): must be object. Fix these fields and call it again.",
    );
    assert.equal(ran, 0);
  });

  test("a handler that throws or rejects gives an error string and a log line with the stack", async () => {
    const logger = new RecordingLogger();
    const reg = new ToolRegistry({ logger });
    reg.register(
      defineTool({
        name: "throws",
        description: "",
        parameters: z.object({}),
        handler: () => {
          throw new Error("sync boom");
        },
      }),
      defineTool({ name: "rejects", description: "", parameters: z.object({}), handler: () => Promise.reject(new Error("async boom")) }),
      defineTool({
        name: "circular",
        description: "",
        parameters: z.object({}),
        handler: () => {
          const o: Record<string, unknown> = {};
          o.self = o;
          return o;
        },
      }),
    );
    assert.equal(await reg.call("throws", {}), "Tool 'throws' failed: sync boom");
    assert.equal(await reg.call("rejects", {}), "Tool 'rejects' failed: async boom");
    assert.match(await reg.call("circular", {}), /^Tool 'circular' failed: .*circular/i);
    const errors = logger.at("error");
    assert.equal(errors.length, 3);
    assert.deepEqual(
      errors.map((r) => r.fields.tool),
      ["throws", "rejects", "circular"],
    );
    const err = errors[0]?.fields.err as { stack?: string };
    assert.match(err.stack ?? "", /sync boom\n\s+at /);
    assert.equal(await reg.call("calculator", {}), "Unknown tool 'calculator': no tool of that name is registered.");
    const calc = registry({ logger });
    assert.equal(await calc.call("calculator", { a: 1, op: "divide", b: 0 }), "Tool 'calculator' failed: division by zero");
  });

  test("a call past its timeout returns a timeout message and aborts the handler's signal", async () => {
    let aborted: unknown;
    const reg = new ToolRegistry({ config: staticConfig(defineConfig({ backgroundThreshold: 0 })), logger: new RecordingLogger() });
    reg.register(
      defineTool({
        name: "hangs",
        description: "",
        parameters: z.object({}),
        handler: (_a, ctx) =>
          new Promise<string>((resolve) => {
            ctx.signal.addEventListener("abort", () => {
              aborted = ctx.signal.reason;
              resolve("late");
            });
          }),
      }),
    );
    assert.equal(await reg.call("hangs", {}, { timeoutMs: 50 }), "Tool 'hangs' timed out after 0.05s.");
    assert.match(String(aborted), /timed out/);
    // The configured timeout applies when no per-call one is given.
    const cfgReg = registry({ toolsExecTimeout: 0.05 });
    assert.equal(await cfgReg.call("slow_task", { seconds: 5 }), "Tool 'slow_task' timed out after 0.05s.");
  });

  test("a per-call timeout that is not a usable number of milliseconds is refused before the handler runs", async () => {
    let ran = 0;
    const reg = new ToolRegistry({ config: staticConfig(defineConfig({ backgroundThreshold: 0 })), logger: new RecordingLogger() });
    reg.register(
      defineTool({
        name: "counts",
        description: "",
        parameters: z.object({}),
        handler: async () => {
          await new Promise((resolve) => setTimeout(resolve, 20));
          return String(++ran);
        },
      }),
    );
    // Past Node's timer limit (2^31-1 ms) a timer fires after 1 ms: such a call used to time out at once.
    for (const bad of [MAX_CALL_TIMEOUT_MS + 1, 3e9, Number.NaN, 0, -5, Number.POSITIVE_INFINITY]) {
      await assert.rejects(
        reg.execute("counts", {}, { timeoutMs: bad }),
        (err: unknown) =>
          err instanceof ToolfleetError &&
          err.code === "CALL_OPTIONS_INVALID" &&
          err.message === `ToolRegistry.execute(): timeoutMs must be a number of milliseconds > 0 and at most 2000000000, got ${String(bad)}`,
      );
    }
    assert.equal(ran, 0);
    // The longest allowed timeout is a real wait, not an instant timeout.
    assert.equal(await reg.call("counts", {}, { timeoutMs: MAX_CALL_TIMEOUT_MS }), "1");
  });

  test("a caller's signal aborts the call's signal", async () => {
    const reg = registry();
    const caller = new AbortController();
    const ctx = new ToolContext({ signal: caller.signal });
    const pending = reg.call("slow_task", { seconds: 5 }, { ctx });
    caller.abort(new Error("user cancelled"));
    assert.equal(await pending, "Tool 'slow_task' was cancelled: user cancelled");
  });

  test("write-back lands on the shared context: files, injected tools, rich messages", async () => {
    const reg = registry();
    const ctx = new ToolContext({ userId: "alice" });
    assert.equal(ctx.injectedTools, null);
    await Promise.all([
      reg.call(sendImage.name, { width: 4, height: 4 }, { ctx }),
      reg.call(injectTool.name, { tool: "calculator" }, { ctx }),
      reg.call(injectTool.name, { tool: "echo" }, { ctx }),
    ]);
    assert.equal(ctx.sentFiles.length, 1);
    assert.equal(ctx.sentFiles[0]?.contentType, "image/png");
    assert.deepEqual([...(ctx.sentFiles[0]?.data.subarray(0, 8) ?? [])], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.deepEqual(ctx.injectedTools, ["calculator", "echo"]);
  });

  test("a gateway-pinned tool is delegated as execute_tool through the adapter", async () => {
    const seen: unknown[] = [];
    const adapter: PlatformAdapter = {
      platform: "discord",
      delegateToGateway: (operation, params, ctx) => {
        seen.push({ operation, params });
        ctx.sendRichMessage({ from: "gateway" });
        return Promise.resolve("done on gateway");
      },
    };
    const ctx = new ToolContext({ platform: "discord", channelId: "c1", userId: "u1", userName: "Ann", guildId: "g1", messageId: "m1", adapter });
    const reg = registry();
    const outcome = await reg.execute("discord_react", { emoji: "👍" }, { userId: "u1", ctx });
    assert.equal(outcome.text, "done on gateway");
    assert.equal(outcome.route, "gateway");
    assert.deepEqual(seen, [
      {
        operation: "execute_tool",
        params: {
          toolName: "discord_react",
          toolArgs: { emoji: "👍" },
          toolCtx: { platform: "discord", channelId: "c1", userId: "u1", userName: "Ann", guildId: "g1", messageId: "m1" },
        },
      },
    ]);
    assert.deepEqual(ctx.sentRichMessages, [{ from: "gateway" }]);
    // A gateway-pinned name need not be registered on this side to be delegated.
    const bare = new ToolRegistry({ logger: new RecordingLogger() });
    assert.equal(await bare.call("play_music", { q: "x" }, { ctx }), "done on gateway");
  });

  test("a gateway-pinned tool without a gateway adapter gets the exact unavailable string", async () => {
    const reg = registry();
    const expected = "Tool 'discord_react' requires the gateway client, which is unavailable.";
    assert.equal(await reg.call("discord_react", { emoji: "x" }), expected);
    assert.equal(await reg.call("discord_react", { emoji: "x" }, { ctx: new ToolContext({ adapter: { platform: "console" } }) }), expected);
  });

  test("on the gateway, whose adapter owns the platform client, a gateway-pinned tool runs directly", async () => {
    const reg = registry();
    const ctx = new ToolContext({ platform: "console", messageId: "m9", adapter: { platform: "console", ownsPlatformClient: true } });
    const outcome = await reg.execute(discordReact.name, { emoji: "🎉" }, { ctx });
    assert.equal(outcome.text, "Reacted with 🎉 on console.");
    assert.equal(outcome.route, "local");
    assert.deepEqual(ctx.sentRichMessages, [{ kind: "reaction", emoji: "🎉", messageId: "m9", channelId: "" }]);
  });

  test("a delegation that rejects becomes an error string, not a crash", async () => {
    const ctx = new ToolContext({ adapter: { platform: "x", delegateToGateway: () => Promise.reject(new Error("gateway down")) } });
    assert.equal(await registry().call("discord_react", { emoji: "x" }, { ctx }), "Tool 'discord_react' failed: gateway down");
  });

  test("pin overrides from config decide what is gateway-pinned", async () => {
    const reg = new ToolRegistry({ config: staticConfig(defineConfig({ gatewayPinned: ["echo"] })), logger: new RecordingLogger() });
    reg.register(echo, discordReact);
    assert.equal(await reg.call("echo", { text: "x" }), "Tool 'echo' requires the gateway client, which is unavailable.");
    assert.equal(await reg.call("discord_react", { emoji: "x" }), "Reacted with x on the platform.");
  });

  test("execute reports kind, route and duration", async () => {
    const reg = registry();
    const ok = await reg.execute("echo", { text: "x" });
    assert.equal(ok.kind, "ok");
    assert.equal(ok.route, "local");
    assert.ok(ok.durationMs >= 0 && ok.durationMs < 1000);
    assert.equal((await reg.execute("admin_stats", {}, { userId: "bob" })).kind, "denied");
    assert.equal((await reg.execute("nope", {})).kind, "unknown_tool");
    assert.equal((await reg.execute("echo", {})).kind, "invalid_args");
    assert.equal(adminStats.name, "admin_stats");
    assert.equal(slowTask.noBackground, false);
  });
});
