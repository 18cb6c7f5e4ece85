import { EventEmitter } from "node:events";
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { errorFields, type Logger } from "../core/log.js";
import { CONFIG_FILE_VAR, loadConfig, type LoadOptions } from "./load.js";
import { defineConfig, type Config } from "./schema.js";

/** Anything that hands out the config in force right now. */
export interface ConfigSource {
  get(): Config;
}

/** A fixed config, for tests and embedders that do not reload. */
export function staticConfig(config: Config = defineConfig()): ConfigSource {
  return { get: () => config };
}

export interface LiveConfigEvents {
  change: [config: Config, previous: Config];
  reloadFailed: [error: Error];
}

/**
 * The config, kept current: readers call `get()` at each use and see the
 * latest good value. A change to the config file or a SIGHUP reloads it; a
 * reload that fails validation keeps the old config and logs why.
 */
export class LiveConfig extends EventEmitter<LiveConfigEvents> implements ConfigSource {
  private current: Config;
  private readonly options: LoadOptions;
  private readonly file: string | undefined;
  private watcher: FSWatcher | undefined;
  private watching = false;
  private debounce: NodeJS.Timeout | undefined;
  private readonly onSighup = (): void => void this.reload();

  /** Loads once; a bad value throws here, at startup, naming the setting. */
  constructor(
    private readonly logger: Logger,
    options: LoadOptions = {},
  ) {
    super();
    const env = options.env ?? process.env;
    this.file = options.file ?? (env[CONFIG_FILE_VAR] || undefined);
    this.options = { env, file: this.file };
    this.current = loadConfig(this.options);
  }

  get(): Config {
    return this.current;
  }

  /** Re-reads file and environment. Returns false (and keeps the old config) when the new one is bad. */
  reload(): boolean {
    try {
      const next = loadConfig(this.options);
      const previous = this.current;
      this.current = next;
      this.logger.info({ file: this.file }, "config reloaded");
      this.emit("change", next, previous);
      return true;
    } catch (err) {
      this.logger.error({ file: this.file, ...errorFields(err) }, "config reload rejected; keeping the previous config");
      this.emit("reloadFailed", err instanceof Error ? err : new Error(String(err)));
      return false;
    }
  }

  /** Starts reloading on file changes and SIGHUP. Calling it again does nothing. */
  watch(): this {
    if (this.watching) return this;
    this.watching = true;
    process.on("SIGHUP", this.onSighup);
    if (!this.file) return this;
    // Watch the directory, not the file: editors and config managers replace
    // the file by rename, which ends a watch on the old inode.
    const path = resolve(this.file);
    const name = basename(path);
    this.watcher = watch(dirname(path), (_event, changed) => {
      if (changed !== null && changed !== name) return;
      clearTimeout(this.debounce);
      // Writers touch a file several times in a row; reload once they are done.
      this.debounce = setTimeout(() => this.reload(), 25);
    });
    this.watcher.on("error", (err) => this.logger.error({ file: this.file, ...errorFields(err) }, "config watch failed"));
    return this;
  }

  close(): void {
    this.watching = false;
    process.off("SIGHUP", this.onSighup);
    clearTimeout(this.debounce);
    this.watcher?.close();
    this.watcher = undefined;
  }
}
