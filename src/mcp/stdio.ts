import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { LoggingLevel } from "@modelcontextprotocol/sdk/types.js";
import { errorFields } from "../core/log.js";
import { fleetMcpServer, type McpToolsOptions } from "./server.js";

/**
 * `toolfleet mcp --stdio`: one client on stdin/stdout (a desktop MCP client starts this process).
 * One SDK server for the whole connection, so the SDK itself aborts a call on notifications/cancelled. Resolves `closed` when the client closes stdin.
 */
export class McpStdioServer {
  private server: Server | undefined;
  readonly closed: Promise<void>;
  private close: () => void = () => undefined;

  constructor(
    private readonly tools: Pick<McpToolsOptions, "registry" | "logger" | "gatewayPinned">,
    private readonly user: string,
  ) {
    this.closed = new Promise((resolve) => (this.close = resolve));
  }

  async start(): Promise<void> {
    // One client: its log level is this process's to keep.
    let level: LoggingLevel | undefined;
    const server = fleetMcpServer(
      { user: this.user },
      {
        ...this.tools,
        setLogLevel: (_caller, given) => {
          level = given;
          return Promise.resolve();
        },
        logLevel: () => Promise.resolve(level),
      },
    );
    const transport = new StdioServerTransport();
    transport.onclose = () => this.close();
    process.stdin.once("end", () => this.close());
    await server.connect(transport);
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    await server?.close();
    this.close();
  }

  toolsChanged(): void {
    this.server?.sendToolListChanged().catch((err: unknown) => this.tools.logger.debug({ ...errorFields(err) }, "list_changed not sent"));
  }
}
