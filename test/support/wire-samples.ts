// A tool request and a reply carrying a file, as the wire-format tests send them, and the
// identity and wire context of a Discord user that the Redis tests' calls carry.
import type { ToolReply, ToolRequest, WireContext } from "../../src/tool-exec/codec.js";
import type { SessionIdentity } from "../../src/tool-exec/session.js";

/** The authenticated identity of `userId` in guild g1, channel c1. */
export const identity = (userId: string): SessionIdentity => ({ userId, guildId: "g1", channelId: "c1", platform: "discord" });

/** The wire context of a call by `userId` from message m1 there. */
export const wireCtx = (userId = "alice"): WireContext => ({
  platform: "discord",
  channelId: "c1",
  userId,
  userName: userId,
  guildId: "g1",
  messageId: "m1",
  observabilityRequestId: "",
  disclosedSkillIds: [],
  roomContext: null,
});

export function sampleRequest(over: Partial<ToolRequest> = {}): ToolRequest {
  return {
    type: "tool_exec",
    toolName: "echo",
    toolArgs: { text: "héllo ✓", nested: { list: [1, null, true] } },
    userId: "u1",
    correlationId: "corr-1",
    traceId: "trace-1",
    idemKey: "trace-1:corr-1",
    replyTo: "sg:stream:tools:reply:w1",
    schemaHash: "ab".repeat(32),
    deadlineMs: 1_900_000_000_000,
    sessionTag: "0123456789abcdef",
    ctx: {
      platform: "discord",
      channelId: "c",
      userId: "u1",
      userName: "Ann",
      guildId: "g",
      messageId: "m",
      observabilityRequestId: "obs",
      disclosedSkillIds: ["s1"],
      roomContext: { topic: "x" },
    },
    ...over,
  };
}

export function sampleReply(data: Uint8Array): ToolReply {
  return {
    correlationId: "corr-1",
    status: "ok",
    result: "done",
    outcome: "ok",
    writeBack: {
      sentFiles: [{ name: "big.bin", contentType: "application/octet-stream", data }],
      injectedTools: ["calculator"],
      sentRichMessages: [{ kind: "embed", n: 1 }],
    },
    workerId: "w1",
    durationMs: 1.5,
  };
}
