import { randomUUID } from "node:crypto";
import type { OutcomeKind } from "./outcome.js";
import { checkedLog, checkedProgress, type LogLevel, type ProgressUpdate, type ToolLog } from "./progress.js";
import type { StructuredResult } from "./result.js";

/** Any value JSON can carry. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A file a tool sent to the chat; the bytes travel as they are (binary-safe). */
export interface SentFile {
  name: string;
  contentType: string;
  data: Uint8Array;
}

/** A platform-specific rich message (an embed, a poll, buttons …), as JSON. */
export type RichMessage = { [key: string]: JsonValue };

/** The identity fields a gateway needs to run a tool for someone. */
export interface ToolCallIdentity {
  platform: string;
  channelId: string;
  userId: string;
  userName: string;
  guildId: string;
  messageId: string;
}

/** Operations a gateway serves; `execute_tool` today, room for more. */
export type GatewayOperation = "execute_tool" | (string & {});

export interface ExecuteToolParams {
  toolName: string;
  toolArgs: unknown;
  toolCtx: ToolCallIdentity;
}

/** A gateway's answer to `execute_tool`. */
export interface GatewayAnswer {
  text: string;
  kind: OutcomeKind;
  /** The tool's structured result, when it returned one. */
  result?: StructuredResult;
}

/** What a delegated call carries besides its parameters: the caller's cancellation, progress and time. */
export interface DelegateOptions {
  signal?: AbortSignal;
  onProgress?: (update: ProgressUpdate) => void;
  timeoutMs?: number;
  maxTotalTimeoutMs?: number;
}

/**
 * The chat platform as a tool sees it. On the gateway the adapter owns the live
 * client (`ownsPlatformClient`), so gateway-pinned tools run right there; on
 * any other tier it can only ask the gateway to do things (`delegateToGateway`),
 * and whatever write-back the gateway reports it appends onto `ctx`.
 */
export interface PlatformAdapter {
  readonly platform: string;
  readonly ownsPlatformClient?: boolean;
  /** Resolves with what the gateway answered: its text, or its text and how the call ended. */
  delegateToGateway?(operation: GatewayOperation, params: ExecuteToolParams, ctx: ToolContext, options?: DelegateOptions): Promise<string | GatewayAnswer>;
}

export interface ToolContextInit {
  platform?: string;
  channelId?: string;
  userId?: string;
  userName?: string;
  guildId?: string;
  messageId?: string;
  observabilityRequestId?: string;
  disclosedSkillIds?: string[];
  roomContext?: JsonValue;
  adapter?: PlatformAdapter | null;
  signal?: AbortSignal;
  /** The call's idempotency key (a worker sets the request's). @defaultValue a random one per call, made when first read */
  idempotencyKey?: string;
}

const NEVER_ABORTED = new AbortController().signal;

/**
 * Where and for whom a tool call runs, and what it left behind.
 *
 * One context is shared by every tool call of a model turn, so the write-back
 * channels (`sentFiles`, `injectedTools`, `sentRichMessages`) collect from all
 * of them. Each call gets a view made by `forCall()` that has its own
 * `signal` but reads and writes the same identity and write-back state.
 */
export class ToolContext implements ToolCallIdentity {
  platform: string;
  channelId: string;
  userId: string;
  userName: string;
  guildId: string;
  messageId: string;
  /** The request id that ties log lines across tiers; also the trace id of remote calls. */
  observabilityRequestId: string;
  disclosedSkillIds: string[];
  roomContext: JsonValue;
  adapter: PlatformAdapter | null;
  // The write-back, in one object a per-call view shares with its context (see forCall).
  private writeBack: { sentFiles: SentFile[]; sentRichMessages: RichMessage[]; injectedTools: string[] | null } = {
    sentFiles: [],
    sentRichMessages: [],
    injectedTools: null,
  };
  private baseSignal: AbortSignal;
  private idemKey: string | undefined;
  // Set only on a per-call view (see forCall).
  private call: CallSignal | undefined;

  constructor(init: ToolContextInit = {}) {
    this.platform = init.platform ?? "";
    this.channelId = init.channelId ?? "";
    this.userId = init.userId ?? "";
    this.userName = init.userName ?? "";
    this.guildId = init.guildId ?? "";
    this.messageId = init.messageId ?? "";
    this.observabilityRequestId = init.observabilityRequestId ?? "";
    this.disclosedSkillIds = init.disclosedSkillIds ?? [];
    this.roomContext = init.roomContext ?? null;
    this.adapter = init.adapter ?? null;
    this.baseSignal = init.signal ?? NEVER_ABORTED;
    // Not read from a context being copied (forCall): its getter would make a key for it.
    this.idemKey = init instanceof ToolContext ? undefined : init.idempotencyKey;
  }

  /**
   * The call's idempotency key: the same on every delivery of one request, so a tool calling
   * an outside API can pass it on and get exactly-once there too. For a call made in this
   * process with no key given, a random one of its own.
   */
  get idempotencyKey(): string {
    return (this.idemKey ??= randomUUID());
  }

  /**
   * Reports how far the call has got; the caller's `onProgress` hears it (coalesced across
   * processes to about 10 a second), and each report extends the caller's deadline up to its
   * maximum total. Does nothing outside a call.
   */
  progress(update: ProgressUpdate): void {
    const checked = checkedProgress(update);
    this.call?.reportProgress(checked);
  }

  /**
   * Sends the caller a log message while the call runs (an MCP client sees `notifications/message`);
   * a caller that did not ask for updates, or a context outside any call, drops it.
   */
  log(level: LogLevel, message: string): void {
    this.call?.reportLog(checkedLog(level, message));
  }

  /**
   * Aborted when the caller gives up or the call times out; handlers pass it
   * to their I/O. On a context outside any call, the caller's own signal.
   */
  get signal(): AbortSignal {
    return this.call ? this.call.signal : this.baseSignal;
  }

  /** Files tools sent during the turn, in order. */
  get sentFiles(): SentFile[] {
    return this.writeBack.sentFiles;
  }

  /** Rich messages tools sent during the turn, in order. */
  get sentRichMessages(): RichMessage[] {
    return this.writeBack.sentRichMessages;
  }

  /** Names of tools injected into the active tool list; null until a tool injects one. */
  get injectedTools(): string[] | null {
    return this.writeBack.injectedTools;
  }

  /** Adds a tool to the active list for the rest of the loop. */
  injectTool(name: string): void {
    (this.writeBack.injectedTools ??= []).push(name);
  }

  sendFile(file: SentFile): void {
    this.sentFiles.push(file);
  }

  sendRichMessage(message: RichMessage): void {
    this.sentRichMessages.push(message);
  }

  /**
   * Appends what a call on another tier left behind, exactly as if it had run
   * here: files and rich messages appended, injected tools appended (the list
   * created on first use).
   */
  mergeWriteBack(writeBack: { sentFiles: SentFile[]; injectedTools: string[] | null; sentRichMessages: RichMessage[] }): void {
    this.sentFiles.push(...writeBack.sentFiles);
    if (writeBack.injectedTools && writeBack.injectedTools.length > 0) {
      (this.writeBack.injectedTools ??= []).push(...writeBack.injectedTools);
    }
    this.sentRichMessages.push(...writeBack.sentRichMessages);
  }

  identity(): ToolCallIdentity {
    const { platform, channelId, userId, userName, guildId, messageId } = this;
    return { platform, channelId, userId, userName, guildId, messageId };
  }

  /**
   * A view of this context for one call: the same write-back, the identity
   * and adapter as they are now, and the call's own signal. (Not
   * `Object.create(this)`: that turns every context into a prototype, which
   * costs V8 dearly on a tools worker, where each call has a fresh context.)
   */
  forCall(call: CallSignal): ToolContext {
    const view = new ToolContext(this);
    view.baseSignal = this.baseSignal;
    view.idemKey = this.idemKey;
    view.writeBack = this.writeBack;
    view.call = call;
    return view;
  }
}

/**
 * The cancellation of one call, made lazily: an AbortSignal costs more than
 * a fast tool call itself, so it only exists once a handler asks for it. An
 * abort before that is remembered and shows on the signal when it is made.
 * Follows the parent (the caller's) signal once made.
 */
export class CallSignal {
  /** Hears the handler's progress reports (set by the registry running the call). */
  onProgress: ((update: ProgressUpdate) => void) | undefined;
  /** Hears the handler's log messages (set by the registry running the call). */
  onLog: ((log: ToolLog) => void) | undefined;
  /** Called once when the call is aborted through `abort()` (set by the registry running the call). */
  onAbort: ((reason: unknown) => void) | undefined;
  private controller: AbortController | undefined;
  private reason: unknown;
  private abortedEarly = false;
  private detached = false;
  private readonly onParentAbort = (): void => this.abort(this.parent.reason);

  constructor(private readonly parent: AbortSignal) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortedEarly) this.controller.abort(this.reason);
      // Made after detach() (a background task's handler asking late): the parent no longer applies.
      else if (this.detached) return this.controller.signal;
      else if (this.parent.aborted) this.controller.abort(this.parent.reason);
      // The shared never-aborted signal of contexts made without one gets no listener: calls running
      // at once would pile them onto one signal (Node warns past 10), and it never fires anyway.
      else if (this.parent !== NEVER_ABORTED) this.parent.addEventListener("abort", this.onParentAbort, { once: true });
    }
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.abortedEarly || (!this.detached && this.parent.aborted) || (this.controller?.signal.aborted ?? false);
  }

  abort(reason: unknown): void {
    // Not `this.aborted`: a parent's abort comes through here (onParentAbort) to abort the controller.
    if (this.abortedEarly || this.controller?.signal.aborted) return;
    if (this.controller) this.controller.abort(reason);
    else {
      this.abortedEarly = true;
      this.reason = reason;
    }
    const onAbort = this.onAbort;
    this.onAbort = undefined;
    onAbort?.(reason);
  }

  reportProgress(update: ProgressUpdate): void {
    if (!this.aborted) this.onProgress?.(update);
  }

  reportLog(log: ToolLog): void {
    if (!this.aborted) this.onLog?.(log);
  }

  /** Stops following the parent; the call is over (or handed to a background task with its own limits). */
  detach(): void {
    this.detached = true;
    if (this.controller) this.parent.removeEventListener("abort", this.onParentAbort);
  }
}
