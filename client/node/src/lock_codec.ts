// What the lock API and its Hold stream share: the caller's view of grants and holders, and the
// AcquireRequest built from the caller's options.
import type { CallOptions } from "./call.js";
import { durationFromMs, msFromDuration, toText, toUint32 } from "./convert.js";
import { AcquireRequest, type Grant as GrantPb, type Holder as HolderPb, LockMode } from "./gen/coord/lock/v1/lock.js";

export type Mode = "exclusive" | "shared";
export type ReleaseOutcome = "released" | "expired" | "not_held" | "held_by_other";
export type ExtendResultOutcome = "extended" | "resumed" | "expired" | "released" | "not_held" | "held_by_other";

/** A grant: what its holder needs to use and end it. */
export interface Grant {
  name: string;
  /** lockToken is the secret proof of the grant (Release and Extend need it); keep it private. */
  lockToken: string;
  /** fencingToken grows with every grant of the name: send it with every protected write. */
  fencingToken: bigint;
  expireTime: Date | undefined;
  /** validFor is the lease time (ms) left when the server answered. */
  validFor: number;
  mode: Mode;
}

/** A current holder, without its secret token. */
export interface Holder {
  owner: string;
  mode: Mode;
  fencingToken: bigint;
  expireTime: Date | undefined;
  /** remaining is the lease time (ms) left when the server answered. */
  remaining: number;
  limit: number;
}

export interface AcquireOptions extends CallOptions {
  /** mode is "exclusive" (default) or "shared". */
  mode?: Mode;
  /** limit is, for "shared", the most holders at once (unset: no limit). */
  limit?: number;
  /** ttl is the lease in milliseconds (default: the server's lock TTL, 30 s). */
  ttl?: number;
  /** wait is how long (ms) to wait in the fair queue; unset or 0 is a try-lock. */
  wait?: number;
  /** owner is a label for humans and logs, shown by describe(). */
  owner?: string;
}
export const ACQUIRE_OPTIONS = ["mode", "limit", "ttl", "wait", "owner"] as const;

export interface AcquireResult {
  acquired: boolean;
  grant: Grant | undefined;
  /** holders are the current holders when not acquired (at most 16). */
  holders: Holder[];
  queuePosition: number;
  queueLength: number;
}

export function modeName(mode: LockMode): Mode {
  return mode === LockMode.LOCK_MODE_SHARED ? "shared" : "exclusive";
}

export function grant(pb: GrantPb): Grant {
  return {
    name: pb.name,
    lockToken: pb.lockToken,
    fencingToken: pb.fencingToken,
    expireTime: pb.expireTime,
    validFor: msFromDuration(pb.validFor),
    mode: modeName(pb.mode),
  };
}

export function holder(pb: HolderPb): Holder {
  return {
    owner: pb.owner,
    mode: modeName(pb.mode),
    fencingToken: pb.fencingToken,
    expireTime: pb.expireTime,
    remaining: msFromDuration(pb.remaining),
    limit: pb.limit,
  };
}

/** The AcquireRequest of acquire(name, options) and hold(name, options). */
export function acquireRequest(name: string, options: AcquireOptions = {}): AcquireRequest {
  const mode = options.mode ?? "exclusive";
  if (mode !== "exclusive" && mode !== "shared") throw new TypeError(`mode must be "exclusive" or "shared", got ${String(mode)}`);
  return AcquireRequest.fromPartial({
    name: toText(name, "name"),
    mode: mode === "shared" ? LockMode.LOCK_MODE_SHARED : LockMode.LOCK_MODE_EXCLUSIVE,
    limit: options.limit === undefined ? undefined : toUint32(options.limit, "limit"),
    ttl: durationFromMs(options.ttl, "ttl"),
    wait: durationFromMs(options.wait, "wait"),
    owner: toText(options.owner, "owner"),
  });
}
