// A lock held over a Hold stream: the acquire, then heartbeats that renew the lease while the holder
// works, and a loss signalled (never thrown into the event loop) when the grant ends without a release.
//
// The lease is counted by this process's monotonic clock: from when the acquire was sent (or the
// server said the stream is queued) plus the grant's `valid_for`, and after each renewal from when
// its heartbeat was sent. That errs on the safe side whatever the clocks of client and server say.
// Heartbeats go out every third of the lease, so two can be lost in a row before it runs out.
import type { ClientDuplexStream, StatusObject } from "@grpc/grpc-js";
import { status as Code } from "@grpc/grpc-js";
import { type CallOptions, type Caller, type Closable, canceller } from "./call.js";
import { checkOptions, enumName, msFromDuration } from "./convert.js";
import { type CoordError, errorFromStatus, fromGrpcError } from "./errors.js";
import {
  HoldHeartbeat,
  HoldRelease,
  type HoldRequest,
  type HoldResponse,
  LostReason,
  ReleaseOutcome as ReleaseOutcomePb,
  type LockServiceClient,
} from "./gen/coord/lock/v1/lock.js";
import { ACQUIRE_OPTIONS, type AcquireOptions, acquireRequest, grant, type Grant, type Holder, holder, type Mode, type ReleaseOutcome } from "./lock_codec.js";

const HEARTBEAT_FRACTION = 1 / 3;

/** Why a lease was lost. */
export type LostReasonName = "expired" | "not_held" | "backend_unavailable" | "stream_broken" | "lease_timeout";

/**
 * A held lock is gone: whatever runs after this point is not protected by it. `reason` is `expired`
 * (no renewal in time, by the server), `not_held` (the grant was released or removed elsewhere),
 * `backend_unavailable` (the server could not reach Redis to renew it), `stream_broken` (the Hold
 * stream failed: the server released the lock) or `lease_timeout` (no renewal was confirmed before
 * the lease ran out by this process's clock).
 */
export class LockLost extends Error {
  constructor(
    readonly lockName: string,
    readonly reason: LostReasonName,
    detail = "",
  ) {
    super(`lock ${JSON.stringify(lockName)} lost (${reason})${detail ? `: ${detail}` : ""}`);
    this.name = "LockLost";
  }
}

/** A hold() found the lock taken: a try-lock, or a wait that ran out. */
export class LockNotAcquired extends Error {
  constructor(
    readonly lockName: string,
    readonly holders: Holder[],
    readonly queuePosition: number,
  ) {
    const held = holders.map((h) => h.owner || "(no owner label)").join(", ") || "nobody";
    super(`lock ${JSON.stringify(lockName)} not acquired: held by ${held}${queuePosition ? `; was number ${queuePosition} in the queue` : ""}`);
    this.name = "LockNotAcquired";
  }
}

export interface HoldOptions extends AcquireOptions {
  /** heartbeat is the time (ms) between renewals (default: a third of the lease). */
  heartbeat?: number;
  /** onLost is called once if the lease is lost (not when it is released). */
  onLost?: (error: LockLost) => void;
}
const HOLD_OPTIONS = [...ACQUIRE_OPTIONS, "heartbeat", "onLost"] as const;

type Stream = ClientDuplexStream<HoldRequest, HoldResponse>;

const now = (): number => performance.now();

/** A lock held over a Hold stream. Release it with `release()`; watch `signal` or `ended` for a loss. */
export class Lease {
  readonly name: string;
  readonly mode: Mode;
  /** lockToken is the grant's secret token. */
  readonly lockToken: string;
  /** fencingToken is the grant's fencing token: send it with every protected write. */
  readonly fencingToken: bigint;
  /** grant is the grant as the server first answered it. */
  readonly grant: Grant;
  /** expireTime is when the grant ends unless renewed, by the server's clock (moved by renewals). */
  expireTime: Date | undefined;
  /** renewals counts the heartbeats the server confirmed. */
  renewals = 0;
  /** lostError is why the lease was lost (undefined while held or once released). */
  lostError: LockLost | undefined;
  /** ended resolves when the lease ends: with the LockLost when lost, with undefined once released. */
  readonly ended: Promise<LockLost | undefined>;

  private readonly controller = new AbortController();
  private resolveEnded!: (value: LockLost | undefined) => void;
  private validUntil: number;
  private readonly sent: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private nextBeat: number;
  private released = false;
  private closing = false;
  private releaseOutcome: ReleaseOutcome | undefined;
  private streamDone = false;
  private readonly waiters: (() => void)[] = [];

  /** @internal */
  constructor(
    private readonly stream: Stream,
    private readonly cancel: () => void,
    first: Grant,
    anchor: number,
    private readonly interval: number | undefined,
    private readonly onLost: ((error: LockLost) => void) | undefined,
    private readonly releaseTimeoutMs: number,
    private readonly registry: Set<Closable>,
  ) {
    this.name = first.name;
    this.mode = first.mode;
    this.lockToken = first.lockToken;
    this.fencingToken = first.fencingToken;
    this.grant = first;
    this.expireTime = first.expireTime;
    this.validUntil = anchor + first.validFor;
    this.interval = interval ?? Math.max(1, first.validFor * HEARTBEAT_FRACTION);
    this.nextBeat = now() + this.interval;
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
    this.ended.then(() => registry.delete(this));
    registry.add(this);
    this.schedule();
  }

  /** signal is aborted, with the LockLost as its reason, when the lease is lost. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** held is true while the lease is neither lost, released, nor run out by this process's clock. */
  get held(): boolean {
    return this.lostError === undefined && !this.released && now() < this.validUntil;
  }

  /** Milliseconds of lease left by this process's monotonic clock (0 once it ran out). */
  remaining(): number {
    return Math.max(0, this.validUntil - now());
  }

  /** Throw LockLost unless the lock is still held: call it before each protected step. */
  check(): void {
    if (this.lostError !== undefined) throw this.lostError;
    if (this.released) throw new LockLost(this.name, "not_held", "the lease was released");
    if (now() >= this.validUntil) {
      this.lose("lease_timeout", "no renewal was confirmed before the lease ran out");
      throw this.lostError;
    }
  }

  /**
   * End the grant and the stream. Resolves with the release outcome, or "lost" when the lease had
   * already been lost; never rejects. Calling it again returns the same outcome.
   */
  async release(): Promise<ReleaseOutcome | "lost"> {
    if (!this.closing) {
      this.closing = true;
      this.stopTimer();
      if (this.lostError === undefined && !this.streamDone) {
        this.stream.write({ kind: { $case: "release", value: HoldRelease.fromPartial({}) } });
        this.stream.end();
        // The server answers `released` and ends the stream; a silent one is cut after the timeout.
        const cut = setTimeout(() => this.cancel(), this.releaseTimeoutMs);
        await new Promise<void>((resolve) => (this.streamDone ? resolve() : this.waiters.push(resolve)));
        clearTimeout(cut);
      } else {
        this.cancel();
      }
      if (this.lostError === undefined) {
        this.released = true;
        this.resolveEnded(undefined);
      }
    }
    return this.lostError !== undefined ? "lost" : (this.releaseOutcome ?? "released");
  }

  /**
   * End the lease without waiting for the server's answer: the stream is cancelled, and the server
   * releases the lock at once. Closing the connection does this to every lease still held.
   */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.stopTimer();
    if (!this.streamDone) this.cancel();
    if (this.lostError === undefined) {
      this.released = true;
      this.resolveEnded(undefined);
    }
  }

  /** @internal An answer read while holding. */
  answer(msg: HoldResponse): void {
    const kind = msg.kind;
    if (kind === undefined) return;
    if (kind.$case === "renewed") {
      const sent = this.sent.shift() ?? now();
      this.validUntil = sent + msFromDuration(kind.value.validFor);
      this.expireTime = kind.value.expireTime;
      this.renewals += 1;
    } else if (kind.$case === "lost") {
      this.lose(enumName(LostReason, kind.value.reason, "LOST_REASON_") as LostReasonName, kind.value.message);
    } else if (kind.$case === "released") {
      this.releaseOutcome = enumName(ReleaseOutcomePb, kind.value.outcome, "RELEASE_OUTCOME_") as ReleaseOutcome;
    }
  }

  /** @internal The stream ended (`error` is undefined when it ended with OK). */
  finished(error: CoordError | undefined): void {
    this.streamDone = true;
    if (!this.closing) {
      this.lose("stream_broken", error?.message ?? "the Hold stream ended");
    }
    for (const wake of this.waiters.splice(0)) wake();
  }

  private lose(reason: LostReasonName, detail: string): void {
    if (this.lostError !== undefined || this.released) return;
    const error = new LockLost(this.name, reason, detail);
    this.lostError = error;
    this.stopTimer();
    this.controller.abort(error);
    this.resolveEnded(error);
    if (!this.streamDone) this.cancel(); // the server releases the lock at once
    if (this.onLost !== undefined) {
      try {
        this.onLost(error);
      } catch (err) {
        // A failing callback must not leave the lease unwatched nor crash the process.
        process.emitWarning(`onLost callback for lock ${JSON.stringify(this.name)} failed: ${String(err)}`);
      }
    }
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  // One timer does both jobs: send the next heartbeat when due, and notice when the lease runs out
  // with no renewal confirmed (then it is lost by this process's clock, and the stream is cut).
  private schedule(): void {
    const wake = Math.min(this.nextBeat, this.validUntil);
    this.timer = setTimeout(() => this.tick(), Math.max(0, wake - now()));
  }

  private tick(): void {
    this.timer = undefined;
    if (this.closing || this.lostError !== undefined) return;
    const t = now();
    if (t >= this.validUntil) {
      this.lose("lease_timeout", "no renewal was confirmed before the lease ran out");
      return;
    }
    if (t >= this.nextBeat) {
      this.sent.push(t);
      this.stream.write({ kind: { $case: "heartbeat", value: HoldHeartbeat.fromPartial({}) } }); // keeps the acquire's TTL
      this.nextBeat = t + (this.interval ?? 0);
    }
    this.schedule();
  }
}

/** Open a Hold stream and resolve with its Lease once granted (see LockApi.hold). */
export function hold(stub: LockServiceClient, caller: Caller, name: string, options: HoldOptions = {}): Promise<Lease> {
  checkOptions(options, HOLD_OPTIONS, "lock.hold");
  const request = acquireRequest(name, options);
  const heartbeat = options.heartbeat;
  if (heartbeat !== undefined && (typeof heartbeat !== "number" || !(heartbeat > 0) || !Number.isFinite(heartbeat))) {
    throw new RangeError(`heartbeat must be a positive number of milliseconds, got ${String(heartbeat)}`);
  }
  const onLost = options.onLost;
  if (onLost !== undefined && typeof onLost !== "function") throw new TypeError("onLost must be a function");
  const signal = options.signal;
  const timeoutMs = options.timeoutMs ?? caller.defaultTimeoutMs;

  if (signal?.aborted) return Promise.reject(errorFromStatus(Code.CANCELLED, "the hold was cancelled", [], { cause: signal.reason }));

  return new Promise<Lease>((resolve, reject) => {
    const stream: Stream = stub.hold(caller.metadataFor());
    const cancel = canceller(stream);
    let lease: Lease | undefined;
    let settled = false;
    let anchor = now();
    // While it waits for the grant, closing the connection cancels it.
    const pending: Closable = { close: () => fail(errorFromStatus(Code.CANCELLED, "the connection was closed", [])) };
    caller.open.add(pending);
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      caller.open.delete(pending);
      clearTimeout(answerTimer);
      signal?.removeEventListener("abort", abort);
      cancel();
      reject(error);
    };
    // The server bounds the wait in the queue; this bounds a server that does not answer at all.
    const answerTimer = setTimeout(
      () => fail(errorFromStatus(Code.DEADLINE_EXCEEDED, `no answer to the Hold of ${JSON.stringify(name)} in time`, [])),
      (options.wait ?? 0) + (timeoutMs || 30_000),
    );
    const abort = (): void => fail(errorFromStatus(Code.CANCELLED, "the hold was cancelled", [], { cause: signal?.reason }));
    signal?.addEventListener("abort", abort, { once: true });

    stream.on("data", (msg: HoldResponse) => {
      if (lease !== undefined) {
        lease.answer(msg);
        return;
      }
      const kind = msg.kind;
      if (kind?.$case === "queued") {
        anchor = now(); // granted later: the lease counts from no earlier than this answer
      } else if (kind?.$case === "acquired") {
        settled = true;
        caller.open.delete(pending);
        clearTimeout(answerTimer);
        signal?.removeEventListener("abort", abort);
        lease = new Lease(stream, cancel, grant(kind.value), anchor, heartbeat, onLost, timeoutMs || 30_000, caller.open);
        resolve(lease);
      } else if (kind?.$case === "notAcquired") {
        fail(new LockNotAcquired(name, kind.value.holders.map(holder), kind.value.queuePosition));
      }
    });
    // An 'error' listener is always attached, so a cancelled or broken stream never crashes the
    // process; how the stream ended is read from its 'status', which grpc-js emits in every case.
    stream.on("error", () => {});
    stream.on("status", (status: StatusObject) => {
      const error = status.code === Code.OK ? undefined : fromGrpcError(status);
      if (lease !== undefined) lease.finished(error);
      else fail(error ?? errorFromStatus(Code.UNKNOWN, `the Hold stream of ${JSON.stringify(name)} ended without an answer`, []));
    });
    stream.write({ kind: { $case: "acquire", value: request } });
  });
}

export type { CallOptions };
