import { errorFields, type Logger } from "../core/log.js";
import { within } from "../core/within.js";
import type { ToolRegistry } from "../core/registry.js";
import type { ToolDefinition } from "../core/tool.js";
import { McpSource, type McpSourceTiming } from "./source.js";
import { checkedSpec, type McpSourceSpec } from "./source-spec.js";

/** How long stop() waits for a catalog republish already under way. */
const REPUBLISH_WAIT_MS = 2000;

export interface McpSourcesOptions {
  specs: readonly McpSourceSpec[];
  /** The worker's registry: the sources' tools are registered in it beside the worker's own. */
  registry: ToolRegistry;
  /** Republishes the worker's catalog part (ToolExecServer.publishCatalog) after the registry changed. */
  publish: () => Promise<unknown>;
  logger: Logger;
  timing?: McpSourceTiming;
}

/**
 * A tools worker's MCP sources: keeps their tools in the worker's registry and republishes its
 * catalog part whenever they change (one publish at a time, the last one reading the registry last).
 */
export class McpSources {
  readonly sources: McpSource[];
  private publishing: Promise<void> = Promise.resolve();
  private running = false;

  constructor(private readonly options: McpSourcesOptions) {
    const host = { swap: (remove: readonly string[], add: readonly ToolDefinition[]) => this.swap(remove, add), logger: options.logger };
    this.sources = options.specs.map((spec) => new McpSource(checkedSpec({ ...spec }), host, options.timing));
  }

  /** Starts every source (a server that is not there yet is retried in the background), then publishes. */
  async start(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.start()));
    this.running = true;
    await this.republish();
  }

  /** Ends every source; the catalog is not republished (the worker withdraws its part as it stops). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.sources.map((s) => s.stop()));
    // A republish under way waits on Redis: a stop during an outage must still end (the part expires by itself).
    try {
      await within(this.publishing, REPUBLISH_WAIT_MS, "the catalog republish under way");
    } catch (err) {
      this.options.logger.warn({ ...errorFields(err) }, "stopping without waiting for the catalog republish");
    }
  }

  private swap(remove: readonly string[], add: readonly ToolDefinition[]): string[] {
    const { registry, logger } = this.options;
    registry.unregister(...remove);
    const kept: string[] = [];
    for (const def of add) {
      if (registry.get(def.name)) {
        logger.warn({ tool: def.name }, "MCP tool skipped: another tool of this worker has its name (give the source an --mcp-prefix)");
        continue;
      }
      try {
        registry.register(def);
        kept.push(def.name);
      } catch (err) {
        logger.warn({ tool: def.name, ...errorFields(err) }, "MCP tool skipped");
      }
    }
    if (this.running) void this.republish();
    return kept;
  }

  private republish(): Promise<void> {
    this.publishing = this.publishing.then(async () => {
      if (!this.running) return;
      try {
        await this.options.publish();
      } catch (err) {
        this.options.logger.error({ ...errorFields(err) }, "could not republish the catalog after the MCP tools changed");
      }
    });
    return this.publishing;
  }
}
