import { wireError, type WireError } from "../core/errors.js";
import type { ToolRegistry } from "../core/registry.js";
import { buildCatalog, type Catalog } from "./catalog.js";

/**
 * What a worker serves, as the catalog says it and as each request is checked
 * against it: the per-tool schema hashes (a request built against another
 * schema is stale, docs/protocol.md) and the tools safe to run twice.
 */
export class ServedTools {
  private current: Catalog;
  private readonly hashes = new Map<string, string>();
  /** Tools annotated idempotent or read-only: running one twice is harmless, so it needs no claim. */
  private readonly repeatSafe = new Set<string>();

  constructor(
    private readonly registry: ToolRegistry,
    /** A tools worker (which publishes a catalog) refuses tools it does not run; a gateway answers them as unknown. */
    private readonly strict: boolean,
  ) {
    this.current = this.rebuild();
  }

  get catalog(): Catalog {
    return this.current;
  }

  /** Reads the registry's tools and permissions again; call after changing them. */
  rebuild(): Catalog {
    const catalog = buildCatalog(this.registry.listTools(), this.registry.getPermissions());
    this.hashes.clear();
    for (const tool of catalog.tools) this.hashes.set(tool.name, tool.schemaHash);
    this.repeatSafe.clear();
    for (const tool of this.registry.listTools()) if (tool.annotations.idempotent || tool.annotations.readOnly) this.repeatSafe.add(tool.name);
    this.current = catalog;
    return catalog;
  }

  isRepeatSafe(tool: string): boolean {
    return this.repeatSafe.has(tool);
  }

  /** CATALOG_STALE when the request was built against a schema of the tool this worker does not run; else null. */
  staleness(tool: string, schemaHash: string, workerId: string): WireError | null {
    if (!schemaHash) return null;
    const current = this.hashes.get(tool);
    if (current !== undefined && current !== schemaHash)
      return wireError("CATALOG_STALE", `The caller's description of tool '${tool}' is out of date; reload the catalog and call again.`);
    // A caller that read the tool from the catalog sent it to a pool where this worker does not run it
    // (a worker joined with other tools): stale too, so the caller routes it to one that does.
    if (current === undefined && this.strict)
      return wireError("CATALOG_STALE", `Worker '${workerId}' does not run tool '${tool}'; reload the catalog and call again.`);
    return null;
  }
}
