import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { ToolListChangedNotificationSchema, type CallToolResult, type Tool } from "@modelcontextprotocol/sdk/types.js";
import type { ToolContext } from "../core/context.js";
import { ToolfleetError } from "../core/errors.js";
import { errorFields, type Logger } from "../core/log.js";
import { MAX_CALL_TIMEOUT_MS } from "../core/timeout.js";
import type { ToolDefinition } from "../core/tool.js";
import { packageVersion } from "../core/version.js";
import { callError, fleetToolName, toolFromMcp } from "./source-tools.js";
import { splitCommand, type McpSourceSpec } from "./source-spec.js";

/** How a source behaves when its server goes away, and how long it waits for one. */
export interface McpSourceTiming {
  /** First wait before a restart or reconnect; doubled on each failure. @defaultValue 250 */
  restartMinMs?: number;
  /** The longest wait between attempts. @defaultValue 10000 */
  restartMaxMs?: number;
  /** How long connecting (and listing the tools) may take. @defaultValue 10000 */
  connectTimeoutMs?: number;
  /** An HTTP server is pinged this often, so one that went away is noticed without a call. @defaultValue 10000 */
  pingEveryMs?: number;
}

/** What a source changes when its tools come and go: the worker's registry, then its catalog part. */
export interface McpSourceHost {
  /** Replaces this source's tools (`remove`) with `add`; returns the names it kept (a clash with another tool skips one). */
  swap(remove: readonly string[], add: readonly ToolDefinition[]): string[];
  logger: Logger;
}

/** Tools read from one server at most (pages of `tools/list`), so a server that pages forever cannot grow the worker. */
const MAX_PAGES = 100;

/**
 * One MCP server as a source of fleet tools: started (stdio) or connected to (Streamable HTTP),
 * its tools listed into the worker's registry, relisted on `list_changed`, taken out while it is
 * down and put back once it is restarted or reconnected (with backoff).
 */
export class McpSource {
  readonly label: string;
  private client: Client | undefined;
  private transport: Transport | undefined;
  private names: string[] = [];
  private stopped = false;
  private failures = 0;
  private retry: NodeJS.Timeout | undefined;
  private ping: NodeJS.Timeout | undefined;
  private listing: Promise<void> | undefined;
  private listAgain = false;
  private readonly timing: Required<McpSourceTiming>;

  constructor(
    private readonly spec: McpSourceSpec,
    private readonly host: McpSourceHost,
    timing: McpSourceTiming = {},
  ) {
    this.label = spec.url !== undefined ? spec.url : `'${spec.command ?? ""}'`;
    this.timing = { restartMinMs: 250, restartMaxMs: 10_000, connectTimeoutMs: 10_000, pingEveryMs: 10_000, ...timing };
  }

  /** The server process's id (stdio), while it runs. */
  get pid(): number | undefined {
    return this.transport instanceof StdioClientTransport ? (this.transport.pid ?? undefined) : undefined;
  }

  /** The fleet names of the tools it serves now. */
  get toolNames(): readonly string[] {
    return this.names;
  }

  /** Connects and lists the tools; a server that cannot be reached now is logged and retried in the background. */
  async start(): Promise<void> {
    try {
      await this.connect();
    } catch (err) {
      this.host.logger.warn({ mcp: this.label, ...errorFields(err) }, "MCP server unavailable; retrying in the background");
      this.scheduleRetry();
    }
  }

  /** Closes the connection (a stdio server is ended: stdin closed, then SIGTERM, then SIGKILL). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.ping);
    const client = this.client;
    this.client = undefined;
    await client?.close().catch((err: unknown) => this.host.logger.debug({ mcp: this.label, ...errorFields(err) }, "closing the MCP connection failed"));
  }

  private async connect(): Promise<void> {
    const transport = this.makeTransport();
    const client = new Client({ name: "toolfleet", version: packageVersion() }, { capabilities: {} });
    client.setNotificationHandler(ToolListChangedNotificationSchema, () =>
      // A listing that fails leaves the last tools in place; the next notice, or a reconnect, lists again.
      this.relist().catch((err: unknown) => this.host.logger.warn({ mcp: this.label, ...errorFields(err) }, "MCP tools could not be listed again")),
    );
    try {
      await client.connect(transport, { timeout: this.timing.connectTimeoutMs });
      if (this.stopped) throw new ToolfleetError("STOPPED", `MCP source ${this.label} stopped while connecting`);
      this.client = client;
      this.transport = transport;
      client.onclose = () => this.closed(client);
      await this.relist();
    } catch (err) {
      if (this.client === client) this.client = undefined;
      await client
        .close()
        .catch((closeErr: unknown) =>
          this.host.logger.debug({ mcp: this.label, ...errorFields(closeErr) }, "closing the MCP connection after a failed connect failed too"),
        );
      throw err;
    }
    this.failures = 0;
    if (this.spec.url !== undefined) this.startPinging(client);
    this.host.logger.info({ mcp: this.label, pid: this.pid, tools: this.names.length }, "MCP server connected");
  }

  private makeTransport(): Transport {
    if (this.spec.url !== undefined) return new StreamableHTTPClientTransport(new URL(this.spec.url));
    const [command, ...args] = splitCommand(this.spec.command ?? "");
    const transport = new StdioClientTransport({ command: command ?? "", args, env: serverEnvironment(process.env), stderr: "pipe" });
    // Read, so a chatty server never blocks on a full pipe; shown at debug level, a line at most 2000 characters.
    transport.stderr?.on("data", (chunk: Buffer) => this.host.logger.debug({ mcp: this.label, stderr: chunk.toString().slice(0, 2000) }, "MCP server stderr"));
    return transport;
  }

  /** Lists the tools again (one listing at a time; a notice during one lists once more after it). */
  private relist(): Promise<void> {
    if (this.listing) {
      this.listAgain = true;
      return this.listing;
    }
    this.listing = (async () => {
      try {
        do {
          this.listAgain = false;
          await this.listOnce();
        } while (this.listAgain && !this.stopped);
      } finally {
        this.listing = undefined;
      }
    })();
    return this.listing;
  }

  private async listOnce(): Promise<void> {
    const client = this.client;
    if (!client) return;
    const tools: Tool[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const listed = await client.listTools(cursor === undefined ? {} : { cursor }, { timeout: this.timing.connectTimeoutMs });
      tools.push(...listed.tools);
      cursor = listed.nextCursor;
      if (cursor === undefined) break;
    }
    if (client !== this.client) return; // it went away while listing
    const defs: ToolDefinition[] = [];
    for (const tool of tools) {
      const name = fleetToolName(this.spec.prefix ?? "", tool.name);
      if (name === null) {
        this.host.logger.warn({ mcp: this.label, tool: tool.name }, "MCP tool skipped: its name with the prefix is not a valid tool name (over 64 characters)");
        continue;
      }
      try {
        defs.push(toolFromMcp(tool, name, this.caller));
      } catch (err) {
        this.host.logger.warn({ mcp: this.label, tool: tool.name, ...errorFields(err) }, "MCP tool skipped");
      }
    }
    this.names = this.host.swap(this.names, defs);
  }

  private readonly caller = async (mcpName: string, args: Record<string, unknown>, ctx: ToolContext): Promise<CallToolResult> => {
    const client = this.client;
    if (!client) throw new ToolfleetError("MCP_SERVER_DOWN", `MCP server ${this.label} is down (being restarted); try again shortly.`);
    const signal = ctx.signal;
    try {
      // The fleet call's deadline bounds it (its signal aborts); the SDK's own timeout is only the outer cap.
      return (await client.callTool({ name: mcpName, arguments: args }, undefined, {
        signal,
        timeout: MAX_CALL_TIMEOUT_MS,
        onprogress: (p) => {
          try {
            ctx.progress({ progress: p.progress, ...(p.total !== undefined ? { total: p.total } : {}), ...(p.message ? { message: p.message } : {}) });
          } catch (err) {
            // A report toolfleet refuses (not a finite number) is dropped; the call goes on.
            this.host.logger.debug({ mcp: this.label, tool: mcpName, ...errorFields(err) }, "MCP progress report dropped");
          }
        },
      })) as CallToolResult;
    } catch (err) {
      throw callError(this.label, mcpName, err, signal.aborted);
    }
  };

  private closed(client: Client): void {
    if (client !== this.client) return;
    this.client = undefined;
    this.transport = undefined;
    clearInterval(this.ping);
    this.names = this.host.swap(this.names, []);
    if (this.stopped) return;
    this.host.logger.warn({ mcp: this.label }, "MCP server went away; its tools left the catalog until it is back");
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    const delay = Math.min(this.timing.restartMaxMs, this.timing.restartMinMs * 2 ** Math.min(this.failures, 20));
    this.failures++;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      this.connect().catch((err: unknown) => {
        this.host.logger.warn({ mcp: this.label, attempt: this.failures, ...errorFields(err) }, "MCP server restart failed; trying again");
        this.scheduleRetry();
      });
    }, delay);
  }

  /** An HTTP server that went away is only noticed by a request: a ping that fails closes the client (and reconnects). */
  private startPinging(client: Client): void {
    clearInterval(this.ping);
    this.ping = setInterval(() => {
      client.ping({ timeout: this.timing.connectTimeoutMs }).catch((err: unknown) => {
        if (client !== this.client) return;
        this.host.logger.warn({ mcp: this.label, ...errorFields(err) }, "MCP server did not answer a ping; closing the connection to reconnect");
        client.close().catch((closeErr: unknown) => this.host.logger.debug({ mcp: this.label, ...errorFields(closeErr) }, "closing the MCP connection failed"));
      });
    }, this.timing.pingEveryMs);
    this.ping.unref();
  }
}

/**
 * The environment a stdio MCP server starts with: the worker's, less every TOOLFLEET_* variable. Those
 * hold the fleet's secrets (TOOLFLEET_FLEET_SECRET, TOOLFLEET_REDIS_URL with its password, LLM and
 * platform keys), which a third-party server has no use for (docs/mcp.md, "The command line").
 */
export function serverEnvironment(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === "string" && !/^TOOLFLEET_/i.test(e[0])));
}
