import { createHash } from "node:crypto";
import { NAMESPACE_PATTERN } from "../config/schema.js";
import { ToolfleetError } from "../core/errors.js";
import { sameSlotKey } from "./slots.js";
/**
 * Every Redis key toolfleet uses, built in this one place from the namespace
 * (docs/protocol.md lists them). Nothing else in the code spells a key.
 * Keys that one MULTI or script touches together share a Redis Cluster slot:
 * a key that must live with key K is `{K}:<suffix>` (src/redis/slots.ts);
 * everything else spreads over the slots by its own name.
 */
export interface Keys {
  readonly namespace: string;
  /** Stream of tool-exec requests of the `default` pool (the key fleets before pools used). */
  readonly toolsStream: string;
  /** Request stream of a pool of tools workers: `default` is `toolsStream`. */
  poolStream(pool: string): string;
  /**
   * Shard `shard` of a pool's request stream (`tools --shards K`): shard 0 is `poolStream(pool)`, shard i > 0 is
   * `<poolStream>:shard:<i>`, with no hash tag, so each hashes by its whole name to a slot of its own.
   */
  poolShardStream(pool: string, shard: number): string;
  /** Prefix of every pool's stream but the default one's (`<prefix><pool>`), for finding them. */
  readonly poolStreamPrefix: string;
  /** One tools worker's own request stream: calls that only it can serve (its pool disagrees on a tool). */
  workerStream(workerId: string): string;
  /** Replies for one inference worker. */
  toolsReplyStream(workerId: string): string;
  /** The consumer group of any stream: `<stream>:grp`. */
  group(stream: string): string;
  /** Where a stream's poison entries are kept: `{<stream>}:dead`, in the stream's slot (copied and acked in one MULTI). */
  deadLetter(stream: string): string;
  /** Prefix shared by every reply stream, for finding departed workers' streams. */
  readonly toolsReplyPrefix: string;
  /** Gateway RPC requests, optionally per shard. */
  gatewayStream(shard?: string): string;
  /** Inbound chat messages from gateways, read by the inference workers' group. */
  readonly chatStream: string;
  /** Answers for one gateway's chats. */
  chatReplyStream(gatewayId: string): string;
  /** Prefix of every gateway's answer stream. */
  readonly chatReplyPrefix: string;
  /** A channel's recent conversation, kept by gateways (a channel id that is not an id is named by its hash). */
  chatHistory(channelId: string): string;
  /** One tools worker's part of the catalog (what it runs), living as long as its presence is refreshed; in the slot of `catalogParts`. */
  catalogPart(pool: string, workerId: string): string;
  /** Sorted set of the catalog's publishers (`<pool>/<workerId>/<hash>`), scored by when each expires (Redis time, ms). */
  readonly catalogParts: string;
  readonly catalogChanged: string;
  /** A session record: named by its trace id and the tag (hash) of its content. */
  toolSession(traceId: string, tag: string): string;
  idempotency(idemKey: string): string;
  /** Heartbeat record of one worker of a service (`tools`, `gateway`, …). */
  heartbeat(service: string, workerId: string): string;
  heartbeatPrefix(service: string): string;
  /** A background task's record, in the slot of `taskIndex` (written with it in one MULTI). */
  task(taskId: string): string;
  /** Sorted set of task ids by start time, for listing. */
  readonly taskIndex: string;
  /** Pub/sub channel on which callers tell every tools and gateway worker of a cancelled request. */
  readonly toolsControl: string;
  /** A caller's mark that it cancelled a request; workers check it at every lease tick (a control message may be lost). */
  cancelMark(idemKey: string): string;
  /** Pub/sub channel on which `toolfleet mcp` replicas tell each other of a client's cancel and of a session's log level. */
  readonly mcpNotices: string;
  /** The log level an MCP session asked for (logging/setLevel), with a TTL. */
  mcpLogLevel(sessionId: string): string;
  /** The key that signs MCP session ids when no fleet secret is set, shared by every replica. */
  readonly mcpSessionKey: string;
}

const NAMESPACE = NAMESPACE_PATTERN;
// Ids from outside (worker ids, trace ids) must not smuggle a separator or a glob.
/** An id that may be part of a key: worker ids, trace ids, correlation ids. */
export const ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;
const ID = ID_PATTERN;

function id(kind: string, value: string): string {
  if (!ID.test(value)) throw new ToolfleetError("ID_INVALID", `invalid ${kind} ${JSON.stringify(value)}: use 1-128 of letters, digits and _ . : @ -`);
  return value;
}

/** A pool name: 1-32 letters, digits, `_` or `-` (no `:` or `/`, which separate it in keys and index members). */
export const POOL_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
/** The pool a tools worker joins unless told otherwise; its stream is the key fleets before pools used. */
export const DEFAULT_POOL = "default";

/** The most request-stream shards a pool may have (`tools --shards`). */
export const MAX_SHARDS = 64;

/** A shard count: an integer 1..MAX_SHARDS. */
export function checkedShards(value: number, what = "shards"): number {
  if (!Number.isInteger(value) || value < 1 || value > MAX_SHARDS)
    throw new ToolfleetError("CONFIG_INVALID", `invalid ${what} ${JSON.stringify(value)}: use an integer from 1 to ${MAX_SHARDS}`);
  return value;
}

/**
 * The shard (0..k-1) of a pool's request streams a call goes to: FNV-1a (32 bits, then mixed) of its
 * idempotency key, modulo k. Stable, so every caller puts the same key on the same shard; a re-send of the key lands where it went.
 */
export function shardOf(idemKey: string, k: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < idemKey.length; i++) hash = Math.imul(hash ^ idemKey.charCodeAt(i), 0x01000193);
  // MurmurHash3's finalizer: FNV-1a's low bits are weak (a key `x:x`, a trace id equal to its call's id,
  // has an even count of every character, so its last bit never changes), and `% k` reads the low bits.
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) % k;
}

export function checkedPool(value: string): string {
  if (!POOL_PATTERN.test(value)) throw new ToolfleetError("ID_INVALID", `invalid pool ${JSON.stringify(value)}: use 1-32 of letters, digits, _ and -`);
  return value;
}

/** Two ids joined by `:` (an idempotency key is `<traceId>:<correlationId>`), so up to 257 characters. */
export const COMPOSITE_ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,257}$/;

function idemKey(value: string): string {
  if (!COMPOSITE_ID_PATTERN.test(value))
    throw new ToolfleetError("ID_INVALID", `invalid idempotency key ${JSON.stringify(value)}: use 1-257 of letters, digits and _ . : @ -`);
  return value;
}

/** A session record's tag: 16 lowercase hex digits, the first 64 bits of the record's SHA-256. */
export const SESSION_TAG_PATTERN = /^[0-9a-f]{16}$/;

function sessionTag(value: string): string {
  if (!SESSION_TAG_PATTERN.test(value)) throw new ToolfleetError("ID_INVALID", `invalid session tag ${JSON.stringify(value)}: use 16 lowercase hex digits`);
  return value;
}

export function keys(namespace = "sg"): Keys {
  if (!NAMESPACE.test(namespace))
    throw new ToolfleetError(
      "ID_INVALID",
      `invalid key namespace ${JSON.stringify(namespace)}: use 1-64 of letters, digits and _ . -, with at most one {tag} (no other brace)`,
    );
  const ns = namespace;
  const toolsStream = `${ns}:stream:tools`;
  return Object.freeze({
    namespace: ns,
    toolsStream,
    poolStream: (pool: string) => (checkedPool(pool) === DEFAULT_POOL ? toolsStream : `${toolsStream}:pool:${pool}`),
    poolShardStream: (pool: string, shard: number) => {
      const stream = checkedPool(pool) === DEFAULT_POOL ? toolsStream : `${toolsStream}:pool:${pool}`;
      if (!Number.isInteger(shard) || shard < 0 || shard >= MAX_SHARDS)
        throw new ToolfleetError("ID_INVALID", `invalid shard ${JSON.stringify(shard)}: use an integer from 0 to ${MAX_SHARDS - 1}`);
      return shard === 0 ? stream : `${stream}:shard:${shard}`;
    },
    poolStreamPrefix: `${toolsStream}:pool:`,
    workerStream: (workerId: string) => `${toolsStream}:worker:${id("worker id", workerId)}`,
    toolsReplyPrefix: `${toolsStream}:reply:`,
    toolsReplyStream: (workerId: string) => `${toolsStream}:reply:${id("worker id", workerId)}`,
    group: (stream: string) => `${stream}:grp`,
    deadLetter: (stream: string) => sameSlotKey(stream, "dead"),
    gatewayStream: (shard?: string) => (shard === undefined ? `${ns}:stream:gateway` : `${ns}:stream:gateway:${id("shard", shard)}`),
    chatStream: `${ns}:stream:chat`,
    chatReplyStream: (gatewayId: string) => `${ns}:stream:chat:reply:${id("gateway id", gatewayId)}`,
    chatReplyPrefix: `${ns}:stream:chat:reply:`,
    // '#' is not an id character, so a hashed name never equals an id's.
    chatHistory: (channelId: string) =>
      `${ns}:chat:history:${ID.test(channelId) ? channelId : `#${createHash("sha256").update(channelId).digest("hex").slice(0, 32)}`}`,
    catalogPart: (pool: string, workerId: string) => sameSlotKey(`${ns}:tools:catalog:parts`, `${checkedPool(pool)}:${id("worker id", workerId)}`),
    catalogParts: `${ns}:tools:catalog:parts`,
    catalogChanged: `${ns}:tools:catalog:changed`,
    toolSession: (traceId: string, tag: string) => `${ns}:tool_session:${id("trace id", traceId)}:${sessionTag(tag)}`,
    idempotency: (key: string) => `${ns}:tools:idem:${idemKey(key)}`,
    heartbeat: (service: string, workerId: string) => `${ns}:worker:${id("service", service)}:${id("worker id", workerId)}`,
    heartbeatPrefix: (service: string) => `${ns}:worker:${id("service", service)}:`,
    task: (taskId: string) => sameSlotKey(`${ns}:tasks`, id("task id", taskId)),
    taskIndex: `${ns}:tasks`,
    toolsControl: `${ns}:tools:control`,
    cancelMark: (key: string) => `${ns}:tools:cancel:${idemKey(key)}`,
    mcpNotices: `${ns}:mcp:notices`,
    mcpLogLevel: (sessionId: string) => `${ns}:mcp:loglevel:${id("MCP session id", sessionId)}`,
    mcpSessionKey: `${ns}:mcp:session-key`,
  });
}
