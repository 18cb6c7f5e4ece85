import type { PlatformAdapter } from "../core/context.js";

/**
 * The simplest live platform: the terminal. It "owns the platform client", so
 * a gateway running it executes gateway-pinned tools itself.
 */
export class ConsoleAdapter implements PlatformAdapter {
  readonly platform = "console";
  readonly ownsPlatformClient = true;
}
