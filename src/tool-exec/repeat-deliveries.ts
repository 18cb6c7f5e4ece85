import { errorFields } from "../core/log.js";
import { wireError } from "../core/errors.js";
import type { DeliveredEntry, Disposition, Outbound } from "../redis/stream-worker.js";
import { DEFAULT_MAX_REPLY_BYTES, formatBytes, type EntryFields } from "../redis/entry-codec.js";
import { DEFAULT_MAX_REQUEST_BYTES, decodeRequest, encodeReply, errorReply, type ToolReply, type ToolRequest } from "./codec.js";
import { readRequestState, takeOverClaim, type IdemState, type RunningClaim } from "./idempotency.js";
import { signEntry, signatureProblem } from "./signing.js";
import type { ToolExecServerOptions } from "./server.js";

/** Files kept with a stored reply for duplicate deliveries, at most. */
const MAX_KEPT_FILE_BYTES = 1024 * 1024;

/**
 * What a tools worker does with a request delivered again (src/tool-exec/server.ts runs the first delivery):
 * the stored reply re-sent to the session that ran it, a skip, a call its previous life was running resumed,
 * a dead letter's reply; and the replies it writes, signed when the fleet has a secret.
 */
export class RepeatDeliveries {
  constructor(
    private readonly options: Pick<ToolExecServerOptions, "redis" | "keys" | "logger" | "workerId" | "worker" | "maxRequestBytes" | "maxReplyBytes">,
    /** This process among the lives of `workerId` (see RunningClaim). */
    private readonly instance: string,
    private readonly claimMs: number,
    private readonly secret: string | null,
    /** The claim command of this process (the server's `claimArgsFor()`, as a first delivery claims). */
    private readonly claimOf: (idemKey: string) => string[],
  ) {}

  /**
   * Another delivery of a request someone already claimed: re-send its reply, skip it, leave it to
   * its owner, or — when the owner was this worker's previous life — run it again ("resumed").
   */
  async alreadyClaimed(req: ToolRequest, known?: IdemState | null): Promise<Disposition | "resumed"> {
    const state = known === undefined ? await readRequestState(this.options.redis, this.options.keys, req.idemKey) : known;
    if (state === null) return { kind: "leave" }; // the claim just expired: retry after the lease
    switch (state.state) {
      case "done":
        return this.resend(req, state);
      case "cancelled":
        this.options.logger.info({ worker: this.options.workerId, tool: req.toolName, idemKey: req.idemKey }, "request cancelled by its caller; skipped");
        return { kind: "ack" };
      case "running":
        // Another worker's claim, or this process's own: that one is alive and running it.
        if (state.worker !== this.options.workerId || state.instance === this.instance) return { kind: "leave" };
        return this.resumeInterrupted(req, state);
    }
  }

  /**
   * A stored reply, for another delivery of the request that ran, only when that delivery names the same
   * session record: one naming another (a forged copy with its own session) would be sent someone else's result.
   */
  resend(req: ToolRequest, state: { reply: EntryFields; session?: string }): Disposition {
    const session = this.options.keys.toolSession(req.traceId, req.sessionTag);
    if (state.session === undefined || state.session === session) return { kind: "ack", reply: { stream: req.replyTo, fields: state.reply } };
    this.options.logger.warn(
      { worker: this.options.workerId, tool: req.toolName, idemKey: req.idemKey },
      "a delivery of a finished request names another session than the one that ran it; its stored reply is not sent",
    );
    return { kind: "ack" };
  }

  /**
   * A claim held by this worker id's previous life: that process is gone (a worker id names one
   * live process), so the call was interrupted mid-run — the tool may have done part or all of its
   * work, but no reply was stored. It is run again now rather than after the claim lapses (what
   * any other worker would do then anyway): at-least-once, only for calls a kill interrupted. Each
   * such re-run is counted in the claim (`restarts`) and logged; a call interrupted more often than
   * the delivery limit is taken to be what kills the worker, and is dead-lettered.
   */
  private async resumeInterrupted(req: ToolRequest, state: RunningClaim): Promise<Disposition | "resumed"> {
    const restarts = (state.restarts ?? 0) + 1;
    const limit = this.options.worker?.maxDeliveries ?? 5;
    if (restarts > limit) {
      const reason = `interrupted by ${restarts - 1} restarts of worker '${this.options.workerId}' (limit ${limit})`;
      return {
        kind: "dead",
        reason,
        reply: this.outbound(
          req.replyTo,
          errorReply(req.correlationId, this.options.workerId, wireError("DEAD_LETTER", `The request could not be completed: ${reason}.`)),
        ),
      };
    }
    const took = await takeOverClaim(this.options.redis, this.options.keys, req.idemKey, this.options.workerId, this.instance, restarts, this.claimMs);
    if (!took.taken) {
      if (took.state !== null) return this.alreadyClaimed(req, took.state);
      // The claim lapsed just now: claim it afresh like any delivery.
      const fresh = await this.options.redis.sendCommand<string | null>(this.claimOf(req.idemKey));
      return fresh === "OK" ? "resumed" : { kind: "leave" };
    }
    this.options.logger.warn(
      { worker: this.options.workerId, tool: req.toolName, idemKey: req.idemKey, restarts, interruptedAt: state.at },
      "re-running a call this worker's previous life was running when it stopped; the tool may run twice",
    );
    return "resumed";
  }

  /**
   * What a repeated delivery of this request gets. Files are kept with it up
   * to a size; past that (base64 in a string key, for a delivery that almost
   * never comes) a duplicate is told instead — the first reply carried them.
   */
  keptForDuplicates(reply: ToolReply, fields: EntryFields): EntryFields {
    const fileBytes = reply.writeBack.sentFiles.reduce((n, f) => n + f.data.byteLength, 0);
    if (fileBytes <= MAX_KEPT_FILE_BYTES) return fields;
    const message = `This request already ran and its reply (with ${formatBytes(fileBytes)} of files) was delivered; the files are too large to keep for a repeated delivery.`;
    const kept = encodeReply({ ...errorReply(reply.correlationId, this.options.workerId, wireError("INTERNAL", message)), durationMs: reply.durationMs });
    return this.secret ? signEntry(this.secret, "reply", kept) : kept;
  }

  deadLetterReply(entry: DeliveredEntry, reason: string): Outbound | null {
    // An entry that is not signed for this fleet names a reply stream and id nobody vouched for.
    if (this.secret && signatureProblem(this.secret, "request", entry.fields)) return null;
    const decoded = decodeRequest(entry.fields, this.options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES);
    const replyTo = decoded.ok ? decoded.value.replyTo : decoded.replyTo;
    const correlationId = decoded.ok ? decoded.value.correlationId : decoded.correlationId;
    if (!replyTo || !correlationId || !this.isOurReplyStream(replyTo)) return null;
    return this.outbound(replyTo, errorReply(correlationId, this.options.workerId, wireError("DEAD_LETTER", `The request could not be completed: ${reason}.`)));
  }

  /** The reply stored for a request that finished (see EntryHandler.storedReply); null when there is none or it cannot be read. */
  async storedReply(entry: DeliveredEntry): Promise<Outbound | null> {
    // As for any delivery: signed for this fleet (when it has a secret), and sent only to the session that ran it.
    if (this.secret && signatureProblem(this.secret, "request", entry.fields)) return null;
    const decoded = decodeRequest(entry.fields, this.options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES);
    if (!decoded.ok || !this.isOurReplyStream(decoded.value.replyTo)) return null;
    try {
      const state = await readRequestState(this.options.redis, this.options.keys, decoded.value.idemKey);
      if (state?.state !== "done") return null;
      const sent = this.resend(decoded.value, state);
      return sent.kind === "ack" ? (sent.reply ?? null) : null;
    } catch (err) {
      // A record that cannot be read must not keep the entry from its dead letter.
      this.options.logger.warn({ worker: this.options.workerId, idemKey: decoded.value.idemKey, ...errorFields(err) }, "could not read a stored reply");
      return null;
    }
  }

  outbound(stream: string, reply: ToolReply): Outbound {
    const fields = encodeReply(reply, this.options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES);
    return { stream, fields: this.secret ? signEntry(this.secret, "reply", fields) : fields };
  }

  isOurReplyStream(stream: string): boolean {
    return stream.startsWith(this.options.keys.toolsReplyPrefix) && stream.length > this.options.keys.toolsReplyPrefix.length;
  }
}
