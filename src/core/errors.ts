/**
 * Local errors: thrown inside one process, for a programmer or an operator to
 * read. Wire errors (what crosses Redis) are a separate family with stable
 * codes; see the protocol module.
 */
export type ToolfleetErrorCode =
  | "CONFIG_INVALID"
  | "PIN_SETS_OVERLAP"
  | "TOOL_NAME_INVALID"
  | "TOOL_DEFINITION_INVALID"
  | "TOOL_DUPLICATE"
  | "CALL_OPTIONS_INVALID";

export class ToolfleetError extends Error {
  override readonly name = "ToolfleetError";
  constructor(
    readonly code: ToolfleetErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
