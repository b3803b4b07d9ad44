// coord.lock.v1.LockService: fair, fenced locks (mutexes, semaphores, read/write locks).
import type { CallOptions, Caller } from "./call.js";
import { checkOptions, durationFromMs, enumName, msFromDuration, toBool, toText } from "./convert.js";
import {
  DescribeRequest,
  ExtendOutcome,
  ExtendRequest,
  LockMode,
  type LockServiceClient,
  ReleaseOutcome as ReleaseOutcomePb,
  ReleaseRequest,
} from "./gen/coord/lock/v1/lock.js";
import { hold, type HoldOptions, Lease, LockLost } from "./hold.js";
import {
  ACQUIRE_OPTIONS,
  type AcquireOptions,
  type AcquireResult,
  acquireRequest,
  type ExtendResultOutcome,
  grant,
  type Holder,
  holder,
  type Mode,
  modeName,
  type ReleaseOutcome,
} from "./lock_codec.js";

export class LockApi {
  constructor(
    readonly stub: LockServiceClient,
    private readonly caller: Caller,
  ) {}

  /** Ask for a grant: a try-lock, or a wait of up to `wait` ms in the fair queue. */
  async acquire(name: string, options?: AcquireOptions): Promise<AcquireResult> {
    checkOptions(options, ACQUIRE_OPTIONS, "lock.acquire");
    const request = acquireRequest(name, options);
    const res = await this.caller.unary(this.stub, "acquire", request, options, options?.wait ?? 0);
    return {
      acquired: res.acquired,
      grant: res.grant === undefined ? undefined : grant(res.grant),
      holders: res.holders.map(holder),
      queuePosition: res.queuePosition,
      queueLength: res.queueLength,
    };
  }

  /** End a grant (idempotent while the server remembers the token). */
  async release(name: string, lockToken: string, options?: CallOptions): Promise<ReleaseOutcome> {
    checkOptions(options, [], "lock.release");
    const res = await this.caller.unary(this.stub, "release", ReleaseRequest.fromPartial({ name: toText(name, "name"), lockToken: toText(lockToken, "lockToken") }), options);
    return enumName(ReleaseOutcomePb, res.outcome, "RELEASE_OUTCOME_") as ReleaseOutcome;
  }

  /** Give a live grant a new lease of `ttl` ms from now; `resume` revives one that just expired. */
  async extend(
    name: string,
    lockToken: string,
    options?: CallOptions & { ttl?: number; resume?: boolean },
  ): Promise<{ outcome: ExtendResultOutcome; held: boolean; expireTime: Date | undefined; validFor: number; fencingToken: bigint }> {
    checkOptions(options, ["ttl", "resume"], "lock.extend");
    const res = await this.caller.unary(
      this.stub,
      "extend",
      ExtendRequest.fromPartial({
        name: toText(name, "name"),
        lockToken: toText(lockToken, "lockToken"),
        ttl: durationFromMs(options?.ttl, "ttl"),
        resume: toBool(options?.resume, "resume"),
      }),
      options,
    );
    const outcome = enumName(ExtendOutcome, res.outcome, "EXTEND_OUTCOME_") as ExtendResultOutcome;
    return {
      outcome,
      held: outcome === "extended" || outcome === "resumed",
      expireTime: res.expireTime,
      validFor: msFromDuration(res.validFor),
      fencingToken: res.fencingToken,
    };
  }

  /** The current holders, mode, queue length and newest fencing token of a lock. */
  async describe(
    name: string,
    options?: CallOptions,
  ): Promise<{ name: string; mode: Mode | undefined; holders: Holder[]; holderCount: number; queueLength: number; lastFencingToken: bigint; limit: number }> {
    checkOptions(options, [], "lock.describe");
    const res = await this.caller.unary(this.stub, "describe", DescribeRequest.fromPartial({ name: toText(name, "name") }), options);
    return {
      name: res.name,
      mode: res.mode === LockMode.LOCK_MODE_UNSPECIFIED ? undefined : modeName(res.mode),
      holders: res.holders.map(holder),
      holderCount: res.holderCount,
      queueLength: res.queueLength,
      lastFencingToken: res.lastFencingToken,
      limit: res.limit,
    };
  }

  /**
   * Acquire the lock over a Hold stream and keep it, renewed by heartbeats, until `release()`.
   * Resolves with the Lease once granted; rejects with LockNotAcquired when the wait ends without a
   * grant. A loss (the grant ended elsewhere, the stream broke, no renewal in time) aborts
   * `lease.signal`, resolves `lease.ended` and calls `onLost`: it never throws into the event loop.
   */
  hold(name: string, options?: HoldOptions): Promise<Lease> {
    return hold(this.stub, this.caller, name, options);
  }

  /**
   * Run `work(lease)` while holding the lock, then release it. If the lock was lost meanwhile and
   * `work` returned, rejects with that LockLost: what `work` did after the loss was not protected.
   */
  async withLock<T>(name: string, work: (lease: Lease) => Promise<T> | T, options?: HoldOptions): Promise<T> {
    const lease = await this.hold(name, options);
    let result: T;
    try {
      result = await work(lease);
    } finally {
      await lease.release();
    }
    const lost = lease.lostError;
    if (lost !== undefined) throw lost;
    return result;
  }
}

export { Lease, LockLost };
export type { AcquireOptions, AcquireResult, ExtendResultOutcome, Grant, Holder, Mode, ReleaseOutcome } from "./lock_codec.js";
