import type { RedisClientType } from "redis";

/** One Redis node's full node-redis client (tests and one-node tools use its whole surface). */
export type RedisNode = RedisClientType;

type Arg = string | Buffer;

/** A MULTI (`exec`) or a pipeline (`execAsPipeline`) of raw commands. */
export interface RedisBatch {
  addCommand(args: readonly Arg[]): RedisBatch;
  exec(): Promise<unknown[]>;
  execAsPipeline(): Promise<unknown[]>;
}

/** The typed commands toolfleet uses beside raw `sendCommand`: the same on one node and on a cluster. */
type Commands =
  | "sendCommand"
  | "get"
  | "set"
  | "mGet"
  | "del"
  | "exists"
  | "expire"
  | "pExpire"
  | "zRem"
  | "zRange"
  | "xRange"
  | "xRevRange"
  | "xDel"
  | "lRange"
  | "xInfoConsumers"
  | "subscribe"
  | "unsubscribe";

/**
 * The narrow port to Redis every tier talks to: one node's client
 * (`RedisNode`) satisfies it as it is, and so does a Redis Cluster
 * (`ClusterConnection`, src/redis/cluster.ts). Keys sent together in one
 * command, MULTI or script must share a slot (docs/protocol.md).
 */
export interface RedisClient extends Pick<RedisNode, Commands> {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  multi(): RedisBatch;
  on(event: "error" | "ready", listener: (arg: unknown) => void): unknown;
  off(event: "error" | "ready", listener: (arg: unknown) => void): unknown;
  removeAllListeners(event?: "error" | "ready"): unknown;
  destroy(): void;
  close(): Promise<void>;
}
