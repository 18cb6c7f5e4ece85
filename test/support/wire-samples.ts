// A tool request and a reply carrying a file, as the wire-format tests send them.
import type { ToolReply, ToolRequest } from "../../src/tool-exec/codec.js";

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
