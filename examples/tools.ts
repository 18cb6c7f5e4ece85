// Example tools used by the demo, the tests and the benchmarks. Each one shows
// a feature: typed zod args, plain JSON Schema, write-back, background offload,
// permissions, and a gateway-pinned tool.
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { TOOL_NAME_PATTERN, defineTool, discordTools, type Permissions, type ToolDefinition } from "../src/index.js";
import { encodePng } from "./png.js";

export const echo = defineTool({
  name: "echo",
  description: "Return the given text, optionally repeated and upper-cased.",
  parameters: z.object({
    text: z.string().describe("The text to return"),
    repeat: z.number().int().min(1).max(100).optional().describe("How many times to repeat it (default 1)"),
    uppercase: z.boolean().optional().describe("Upper-case the result"),
  }),
  allowRepeat: true,
  annotations: { readOnly: true, idempotent: true },
  handler: ({ text, repeat, uppercase }) => {
    const out = repeat && repeat > 1 ? text.repeat(repeat) : text;
    return uppercase ? out.toUpperCase() : out;
  },
});

/**
 * The same echo, not annotated: a tools worker claims each call before running it and stores its
 * reply, so it runs once however often its request is delivered (the path of every tool with a side
 * effect). The benchmark measures it beside `echo` (docs/benchmarks.md).
 */
export const echoOnce = defineTool({
  name: "echo_once",
  description: "Return the given text; run exactly once per call (no idempotent or read-only annotation).",
  parameters: z.object({ text: z.string().describe("The text to return") }),
  handler: ({ text }) => text,
});

const OPERATIONS = {
  add: (a: number, b: number) => a + b,
  subtract: (a: number, b: number) => a - b,
  multiply: (a: number, b: number) => a * b,
  divide: (a: number, b: number) => {
    if (b === 0) throw new Error("division by zero");
    return a / b;
  },
  power: (a: number, b: number) => a ** b,
} as const;

export const calculator = defineTool({
  name: "calculator",
  description: "Apply an arithmetic operation to two numbers.",
  parameters: z.object({
    a: z.number(),
    op: z.enum(["add", "subtract", "multiply", "divide", "power"]),
    b: z.number(),
  }),
  annotations: { readOnly: true, idempotent: true },
  handler: ({ a, op, b }) => ({ result: OPERATIONS[op](a, b) }),
});

// Plain JSON Schema instead of zod: the args arrive as a validated record.
export const currentTime = defineTool({
  name: "current_time",
  description: "The current date and time, in UTC or in a given IANA time zone.",
  parameters: {
    type: "object",
    properties: { timezone: { type: "string", description: "An IANA zone such as Europe/Paris" } },
    additionalProperties: false,
  },
  noBackground: true,
  annotations: { readOnly: true },
  handler: (args) => {
    const timeZone = typeof args.timezone === "string" ? args.timezone : "UTC";
    const now = new Date();
    const local = new Intl.DateTimeFormat("en-GB", { timeZone, dateStyle: "full", timeStyle: "long" }).format(now);
    return { iso: now.toISOString(), timezone: timeZone, local };
  },
});

export const sendImage = defineTool({
  name: "send_image",
  description: "Draw a colour gradient and send it to the chat as a PNG image.",
  parameters: z.object({
    width: z.number().int().min(1).max(2048).default(64),
    height: z.number().int().min(1).max(2048).default(64),
  }),
  handler: ({ width, height }, ctx) => {
    const data = encodePng(width, height, (x, y) => [Math.round((255 * x) / Math.max(1, width - 1)), Math.round((255 * y) / Math.max(1, height - 1)), 160]);
    ctx.sendFile({ name: "gradient.png", contentType: "image/png", data });
    return `Sent gradient.png (${width}x${height}, ${data.length} bytes).`;
  },
});

// Sends a file of a given size (a repeating byte pattern): for moving bulk through the write-back.
export const makeFile = defineTool({
  name: "make_file",
  description: "Send a binary file of the given size in bytes.",
  parameters: z.object({
    bytes: z
      .number()
      .int()
      .min(0)
      .max(32 * 1024 * 1024),
  }),
  annotations: { readOnly: true, idempotent: true },
  handler: ({ bytes }, ctx) => {
    const pattern = Buffer.from(Array.from({ length: 251 }, (_, i) => i));
    const data = Buffer.alloc(bytes, pattern);
    ctx.sendFile({ name: `blob-${bytes}.bin`, contentType: "application/octet-stream", data });
    return `Sent blob-${bytes}.bin (${bytes} bytes).`;
  },
});

export const injectTool = defineTool({
  name: "inject_tool",
  description: "Make another tool available to the model for the rest of this conversation turn.",
  parameters: z.object({ tool: z.string().regex(TOOL_NAME_PATTERN) }),
  allowRepeat: true,
  handler: ({ tool }, ctx) => {
    ctx.injectTool(tool);
    return `Tool '${tool}' is now available.`;
  },
});

export const slowTask = defineTool({
  name: "slow_task",
  description: "Work for the given number of seconds, then report; long runs continue in the background.",
  parameters: z.object({ seconds: z.number().min(0).max(3600), label: z.string().default("work") }),
  handler: async ({ seconds, label }, ctx) => {
    await sleep(seconds * 1000, undefined, { signal: ctx.signal });
    return `${label} finished after ${seconds}s.`;
  },
});

export const adminStats = defineTool({
  name: "admin_stats",
  description: "Process statistics of the service running the tool (admins only).",
  parameters: z.object({}),
  annotations: { readOnly: true },
  handler: () => {
    const { rss, heapUsed } = process.memoryUsage();
    return { pid: process.pid, uptimeSeconds: Math.round(process.uptime()), rssBytes: rss, heapUsedBytes: heapUsed };
  },
});

// Gateway-pinned by name: on a gateway that owns the platform client they run
// there; anywhere else the registry delegates them to the gateway. discord_react
// reacts on any live platform; the other Discord tools need the Discord adapter.
export const discordReact = discordTools.find((t) => t.name === "discord_react")!;

export const exampleTools: readonly ToolDefinition[] = [
  echo,
  echoOnce,
  calculator,
  currentTime,
  sendImage,
  makeFile,
  injectTool,
  slowTask,
  adminStats,
  ...discordTools,
];

/** `admin_stats` is for the user `admin` only; everything else is open. */
export const examplePermissions: Permissions = { admin_stats: ["admin"] };
