import { GATEWAY_PINNED_TOOLS } from "./pins.js";

/**
 * The settings the core reads at each call. The validated `Config` of
 * src/config/schema.ts has all of them, so any config source serves here;
 * the core itself never imports the config module (it sits below it).
 */
export interface CoreSettings {
  /** Seconds a tool call may take before it is abandoned. */
  readonly toolsExecTimeout: number;
  /** Tools that run on the gateway. */
  readonly gatewayPinned: ReadonlySet<string>;
  /** Tools that run next to the LLM (read here only to check a tool's own `pin` against it). */
  readonly inferencePinned?: ReadonlySet<string>;
  /** Seconds after which a still-running call becomes a background task; 0 turns offload off. */
  readonly backgroundThreshold: number;
  /** Background tasks running at once. */
  readonly taskMaxRunning: number;
  /** Seconds a finished task's result is kept. */
  readonly taskResultTtl: number;
  /** Seconds a background task may run in all. */
  readonly taskTimeout: number;
}

/** Anything that hands out the settings in force right now (a `ConfigSource` is one). */
export interface SettingsSource {
  get(): CoreSettings;
}

/** The core's defaults; the config module's defaults are built from these. */
export const CORE_DEFAULTS = {
  toolsExecTimeout: 120,
  backgroundThreshold: 30,
  taskMaxRunning: 32,
  taskResultTtl: 3600,
  taskTimeout: 900,
} as const;

const DEFAULT_SETTINGS: CoreSettings = Object.freeze({ ...CORE_DEFAULTS, gatewayPinned: GATEWAY_PINNED_TOOLS });

/** The defaults, for a registry made without a config. */
export const defaultSettings: SettingsSource = { get: () => DEFAULT_SETTINGS };
