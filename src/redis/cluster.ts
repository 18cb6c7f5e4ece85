import { EventEmitter } from "node:events";
import { createCluster } from "redis";
import { ToolfleetError } from "../core/errors.js";
import type { RedisBatch, RedisClient, RedisNode } from "./port.js";
import { slotOf } from "./slots.js";

type Arg = string | Buffer;
type Args = readonly Arg[];
type SendOptions = Parameters<Cluster["sendCommand"]>[3];
type ClusterOptions = Parameters<typeof createCluster>[0];
type Cluster = ReturnType<typeof newCluster>;

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message || err.constructor.name : String(err);
}

/** Commands that name no key: sent to any node (PUBLISH reaches every node's subscribers). */
const KEYLESS: ReadonlySet<string> = new Set(["TIME", "INFO", "PING", "PUBLISH", "CLUSTER", "CLIENT", "COMMAND"]);

/**
 * The key a raw command is routed by: the first key it names, or undefined
 * for a command that names none. Only the commands toolfleet sends have a
 * place other than right after the command name.
 */
export function routingKey(args: Args): Arg | undefined {
  const name = String(args[0] ?? "").toUpperCase();
  if (KEYLESS.has(name)) return undefined;
  switch (name) {
    case "XGROUP":
    case "XINFO":
      return args[2];
    case "EVAL":
    case "EVALSHA":
    case "FCALL":
      return Number(args[2]) > 0 ? args[3] : undefined;
    case "XREAD":
    case "XREADGROUP": {
      const at = args.findIndex((a) => String(a).toUpperCase() === "STREAMS");
      return at === -1 ? undefined : args[at + 1];
    }
    default:
      return args[1];
  }
}

/** The one slot of commands sent together; keyless ones go with any. Null when they span slots. */
function commonSlot(commands: readonly Args[]): { slot: number | undefined; key: Arg | undefined } | null {
  let slot: number | undefined;
  let key: Arg | undefined;
  for (const args of commands) {
    const k = routingKey(args);
    if (k === undefined) continue;
    const s = slotOf(k);
    if (slot !== undefined && s !== slot) return null;
    slot = s;
    key ??= k;
  }
  return { slot, key };
}

/** An MGET whose keys fall in several slots: split by slot, never sent to one node as it is. */
function spansSlots(args: Args): boolean {
  return String(args[0]).toUpperCase() === "MGET" && args.length > 2 && commonSlot(args.slice(1).map((k) => ["GET", k])) === null;
}

/**
 * A Redis Cluster behind the same narrow interface as one node (`RedisClient`,
 * src/redis/client.ts), so every tier runs on either unchanged. Raw commands
 * are routed by their first key; a MULTI must stay in one slot (it is refused
 * otherwise, never split: that would break its atomicity); a pipeline that
 * spans slots is sent slot group by slot group, in order, each group once the
 * one before has answered, so "A before B" still holds across nodes (the
 * session record before its request). MGET over several slots is split.
 */
export class ClusterConnection extends EventEmitter implements RedisClient {
  readonly get: RedisNode["get"];
  readonly set: RedisNode["set"];
  readonly del: RedisNode["del"];
  readonly exists: RedisNode["exists"];
  readonly expire: RedisNode["expire"];
  readonly pExpire: RedisNode["pExpire"];
  readonly zRem: RedisNode["zRem"];
  readonly zRange: RedisNode["zRange"];
  readonly xRange: RedisNode["xRange"];
  readonly xRevRange: RedisNode["xRevRange"];
  readonly xDel: RedisNode["xDel"];
  readonly lRange: RedisNode["lRange"];
  readonly xInfoConsumers: RedisNode["xInfoConsumers"];
  readonly subscribe: RedisNode["subscribe"];
  readonly unsubscribe: RedisNode["unsubscribe"];

  readonly cluster: Cluster;

  constructor(private readonly options: ClusterOptions) {
    super();
    const c = (this.cluster = newCluster(options));
    // The typed commands route themselves by their key: the same signatures as on one node.
    this.get = c.get.bind(c);
    this.set = c.set.bind(c);
    this.del = c.del.bind(c);
    this.exists = c.exists.bind(c);
    this.expire = c.expire.bind(c);
    this.pExpire = c.pExpire.bind(c);
    this.zRem = c.zRem.bind(c);
    this.zRange = c.zRange.bind(c);
    this.xRange = c.xRange.bind(c);
    this.xRevRange = c.xRevRange.bind(c);
    this.xDel = c.xDel.bind(c);
    this.lRange = c.lRange.bind(c);
    this.xInfoConsumers = c.xInfoConsumers.bind(c);
    this.subscribe = (channels, listener, bufferMode) => c.subscribe(channels, listener, bufferMode);
    this.unsubscribe = c.unsubscribe.bind(c) as RedisNode["unsubscribe"];
    // The nodes' events, as one connection would give them (src/redis/client.ts logs them). Until the
    // cluster is up, a node's failure is connect()'s to report (a listed node may be down while the
    // others answer): an 'error' with no listener would throw out of the cluster client's discovery.
    let down = false;
    const failed = (err: unknown, node?: { host: string; port: number }): void => {
      if (!c.isReady || this.listenerCount("error") === 0) {
        if (this.connectFailures.size < 16) this.connectFailures.add(`${node ? `${node.host}:${node.port}: ` : ""}${reasonOf(err)}`);
        return;
      }
      down = true;
      this.emit("error", err);
    };
    c.on("error", (err: unknown) => failed(err));
    c.on("node-error", failed);
    // 'ready' once when the cluster is whole again after a node's failure, not for every node that
    // connects (ToolsClient treats a 'ready' as a reconnect: src/tool-exec/client.ts).
    c.on("node-ready", () => {
      if (!down || !c.isReady) return;
      down = false;
      this.emit("ready");
    });
  }

  /** Why nodes failed while connecting (cleared by each connect()): a connect error's reasons, or a warning. */
  readonly connectFailures = new Set<string>();

  get isOpen(): boolean {
    return this.cluster.isOpen;
  }

  get isReady(): boolean {
    return this.cluster.isReady;
  }

  async connect(): Promise<void> {
    this.connectFailures.clear();
    await this.cluster.connect();
  }

  destroy(): void {
    this.cluster.destroy();
  }

  close(): Promise<void> {
    return this.cluster.close();
  }

  sendCommand<T = unknown>(args: Args, options?: SendOptions): Promise<T> {
    if (spansSlots(args)) return this.splitMGet(args.slice(1), options) as Promise<T>;
    return this.cluster.sendCommand<T>(routingKey(args), false, [...args], options);
  }

  mGet(keys: Arg[]): Promise<(string | null)[]> {
    return this.sendCommand<(string | null)[]>(["MGET", ...keys]);
  }

  multi(): RedisBatch {
    return new ClusterBatch(this);
  }

  /** The same cluster, with connections of its own (a blocking read or a subscription holds one). */
  async duplicate(name?: string): Promise<ClusterConnection> {
    // Connected only to the nodes it talks to: a blocking reader reads one stream, so one slot.
    const defaults = { ...this.options.defaults, ...(name ? { name } : {}) };
    const copy = new ClusterConnection({ ...this.options, defaults, minimizeConnections: true });
    try {
      await copy.connect();
    } catch (err) {
      copy.destroy();
      throw new ToolfleetError("REDIS_UNAVAILABLE", `${copy.where} does not answer a new connection (${copy.whyNot(err)})`, { cause: err });
    }
    return copy;
  }

  /** "the Redis Cluster at host:port, …", its listed nodes. */
  get where(): string {
    return `the Redis Cluster at ${this.options.rootNodes.map((n) => n.url?.replace(/^rediss?:\/\//, "") ?? "?").join(", ")}`;
  }

  /** Why the last connect() failed: every node's reason, else `err`'s. */
  whyNot(err: unknown): string {
    return this.connectFailures.size > 0 ? [...this.connectFailures].join("; ") : reasonOf(err);
  }

  /** Whether a node refused the credentials or the commands connecting needs (waiting will not help). */
  get refused(): boolean {
    return [...this.connectFailures].some((r) => /\b(NOPERM|WRONGPASS|NOAUTH)\b/.test(r));
  }

  /** Every master's keys matching `pattern`, a batch at a time (SCAN is per node on a cluster). */
  async *scan(pattern: string): AsyncIterable<string[]> {
    for (const master of this.cluster.masters) {
      const node = await this.cluster.nodeClient(master);
      for await (const batch of node.scanIterator({ MATCH: pattern, COUNT: 1000 })) yield batch.map(String);
    }
  }

  private async splitMGet(keys: Args, options?: SendOptions): Promise<unknown[]> {
    const bySlot = new Map<number, number[]>();
    keys.forEach((k, i) => {
      const slot = slotOf(k);
      const at = bySlot.get(slot);
      if (at) at.push(i);
      else bySlot.set(slot, [i]);
    });
    const out = new Array<unknown>(keys.length).fill(null);
    await Promise.all(
      [...bySlot.values()].map(async (at) => {
        const answer = await this.cluster.sendCommand<unknown[]>(keys[at[0]!], true, ["MGET", ...at.map((i) => keys[i]!)], options);
        at.forEach((i, n) => (out[i] = answer[n] ?? null));
      }),
    );
    return out;
  }
}

/** A MULTI or a pipeline on a cluster (see `ClusterConnection`). */
class ClusterBatch implements RedisBatch {
  private readonly commands: Args[] = [];

  constructor(private readonly connection: ClusterConnection) {}

  addCommand(args: Args): this {
    this.commands.push(args);
    return this;
  }

  async exec(): Promise<unknown[]> {
    const common = commonSlot(this.commands);
    if (common === null || this.commands.some(spansSlots))
      throw new ToolfleetError(
        "REDIS_CROSSSLOT",
        `a MULTI touches keys of several cluster slots (${this.commands.map((c) => String(routingKey(c) ?? "-")).join(", ")}); see docs/protocol.md, "Keys on a Redis Cluster"`,
      );
    const multi = this.connection.cluster.multi(common.key);
    for (const args of this.commands) multi.addCommand(routingKey(args), false, [...args]);
    return await multi.exec();
  }

  async execAsPipeline(): Promise<unknown[]> {
    const groups: Args[][] = [];
    let slot: number | undefined;
    for (const args of this.commands) {
      // A command whose own keys span slots (an MGET of cancel marks) goes alone: sendCommand splits it.
      if (spansSlots(args)) {
        groups.push([args]);
        groups.push([]);
        slot = undefined;
        continue;
      }
      const key = routingKey(args);
      const s = key === undefined ? undefined : slotOf(key);
      const last = groups[groups.length - 1];
      if (last && (last.length === 0 || s === undefined || slot === undefined || s === slot)) last.push(args);
      else groups.push([args]);
      if (s !== undefined) slot = s;
    }
    const out: unknown[] = [];
    for (const group of groups) {
      if (group.length === 0) continue;
      if (group.length === 1) out.push(await this.connection.sendCommand(group[0]!));
      else {
        const key = commonSlot(group)?.key;
        const pipe = this.connection.cluster.multi(key);
        for (const args of group) pipe.addCommand(routingKey(args), false, [...args]);
        out.push(...((await pipe.execAsPipeline()) as unknown[]));
      }
    }
    return out;
  }
}

export interface ClusterConnectOptions {
  /** `host:port` of some nodes; the rest are found from them. */
  nodes: readonly string[];
  /** Credentials and TLS, as for one node: `rediss://user:pass@…` (host and port are the nodes'). */
  url: string;
  name?: string;
  connectTimeoutMs: number;
  reconnectDelay: (retries: number) => number;
}

/** A cluster client, not yet connected, with the credentials and TLS of `url` on every node. */
export function clusterConnection(options: ClusterConnectOptions): ClusterConnection {
  const url = new URL(options.url);
  const tls = url.protocol === "rediss:";
  const scheme = tls ? "rediss" : "redis";
  return new ClusterConnection({
    rootNodes: options.nodes.map((node) => ({ url: `${scheme}://${node}` })),
    defaults: {
      ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
      ...(options.name ? { name: options.name } : {}),
      socket: { tls, connectTimeout: options.connectTimeoutMs, reconnectStrategy: options.reconnectDelay },
    },
    // As on one node (src/redis/client.ts): every wait is bounded by toolfleet itself.
    commandOptions: { timeout: 0 },
    // A failover moves a slot: ask where it went soon after a node stops answering.
    topologyRefreshOnReconnectionAttemptStrategy: 500,
  });
}

function newCluster(options: ClusterOptions) {
  return createCluster(options);
}
