// coord.cache.v1.CacheService: byte values under string keys, each with a TTL and a version.
import type { CallOptions, Caller } from "./call.js";
import {
  type BytesLike,
  checkOptions,
  durationFromMs,
  enumName,
  type Int64Like,
  toBytes,
  toInt64,
  toText,
  toTextList,
} from "./convert.js";
import {
  BatchGetRequest,
  BatchSetRequest,
  type CacheServiceClient,
  DeleteOutcome,
  DeleteRequest,
  type Entry as EntryPb,
  GetOrLeaseRequest,
  GetRequest,
  IncrementRequest,
  InvalidateTagsRequest,
  SetRequest,
  type SetResponse,
  TouchRequest,
  WriteOutcome,
} from "./gen/coord/cache/v1/cache.js";

/** One entry as read; when `found` is false the other fields are empty. */
export interface Entry {
  key: string;
  found: boolean;
  /** value is the stored bytes (a Buffer: `.toString()` decodes UTF-8). */
  value: Buffer;
  /** version is the entry's version, strictly increasing per key: pass it as `ifVersion`. */
  version: bigint;
  /** expireTime is when the entry expires, by the Redis server's clock. */
  expireTime: Date | undefined;
}

export type SetOutcome = "stored" | "already_exists" | "not_found" | "version_mismatch" | "fenced" | "lease_lost";

export interface SetResult {
  /** outcome says whether the write happened and, if not, why (a failed condition is no error). */
  outcome: SetOutcome;
  stored: boolean;
  /** version is the new version when stored; else the current one (0n when the key does not exist). */
  version: bigint;
  expireTime: Date | undefined;
  /** fencingToken is, for a fenced write, the highest token the key accepted for the fence's lock. */
  fencingToken: bigint;
}

export interface SetOptions extends CallOptions {
  /** ttl in milliseconds (default: the server's default TTL). */
  ttl?: number;
  /** ifAbsent writes only when the key does not exist. */
  ifAbsent?: boolean;
  /** ifPresent writes only when the key exists. */
  ifPresent?: boolean;
  /** ifVersion writes only when the entry's version equals it (compare-and-set). */
  ifVersion?: Int64Like;
  /** fence makes this a write on behalf of a lock holder (see Lease.fencingToken). */
  fence?: { lockName: string; fencingToken: Int64Like };
  /** leaseToken fills a lease from getOrLease. */
  leaseToken?: string;
  /** tags label the entry for invalidateTags. */
  tags?: string[];
}
const SET_OPTIONS = ["ttl", "ifAbsent", "ifPresent", "ifVersion", "fence", "leaseToken", "tags"] as const;

export type DeleteKeyOutcome = "deleted" | "not_found" | "version_mismatch";

export interface DeleteResult {
  deletedCount: number;
  results: { key: string; outcome: DeleteKeyOutcome; version: bigint }[];
}

export interface IncrementResult {
  value: bigint;
  version: bigint;
  created: boolean;
  expireTime: Date | undefined;
}

export interface FillLease {
  /** entry is the value when it was there (or set while waiting). */
  entry: Entry;
  /** leaseToken, when not "", makes this caller the one to compute the value and set it with it. */
  leaseToken: string;
  leaseExpireTime: Date | undefined;
  waited: boolean;
}

function entry(pb: EntryPb | undefined, key: string): Entry {
  if (pb === undefined) return { key, found: false, value: Buffer.alloc(0), version: 0n, expireTime: undefined };
  return { key: pb.key, found: pb.found, value: pb.value, version: pb.version, expireTime: pb.expireTime };
}

function setResult(pb: SetResponse): SetResult {
  const outcome = enumName(WriteOutcome, pb.outcome, "WRITE_OUTCOME_") as SetOutcome;
  return {
    outcome,
    stored: outcome === "stored",
    version: pb.version,
    expireTime: pb.expireTime,
    fencingToken: pb.fencingToken,
  };
}

/** The SetRequest of set(key, value, options), checked field by field. */
export function setRequest(key: string, value: BytesLike, options: SetOptions = {}, where = "cache.set"): SetRequest {
  checkOptions(options, SET_OPTIONS, where);
  const conditions = [options.ifAbsent, options.ifPresent, options.ifVersion].filter((c) => c !== undefined && c !== false);
  if (conditions.length > 1) throw new TypeError(`${where}: ifAbsent, ifPresent and ifVersion exclude each other`);
  let condition: SetRequest["condition"];
  if (options.ifAbsent) condition = { $case: "ifAbsent", value: {} };
  else if (options.ifPresent) condition = { $case: "ifPresent", value: {} };
  else if (options.ifVersion !== undefined) condition = { $case: "ifVersion", value: toInt64(options.ifVersion, "ifVersion", true) };
  const fence = options.fence;
  // fromPartial: fields a newer proto adds get their defaults.
  return SetRequest.fromPartial({
    key: toText(key, "key"),
    value: toBytes(value, "value"),
    ttl: durationFromMs(options.ttl, "ttl"),
    condition,
    fence:
      fence === undefined
        ? undefined
        : { lockName: toText(fence.lockName, "fence.lockName"), fencingToken: toInt64(fence.fencingToken, "fence.fencingToken", true) },
    leaseToken: toText(options.leaseToken, "leaseToken"),
    tags: toTextList(options.tags, "tags"),
  });
}

export class CacheApi {
  constructor(
    /** stub is the generated client, for the methods this layer does not wrap (GetStream...). */
    readonly stub: CacheServiceClient,
    private readonly caller: Caller,
  ) {}

  /** Read one key; a miss is `found: false`, not an error. */
  async get(key: string, options?: CallOptions): Promise<Entry> {
    checkOptions(options, [], "cache.get");
    const res = await this.caller.unary(this.stub, "get", GetRequest.fromPartial({ key: toText(key, "key") }), options);
    return entry(res.entry, key);
  }

  /** Read many keys; the entries come back in the order of `keys`. */
  async getMany(keys: string[], options?: CallOptions): Promise<Entry[]> {
    checkOptions(options, [], "cache.getMany");
    const list = toTextList(keys, "keys");
    const res = await this.caller.unary(this.stub, "batchGet", BatchGetRequest.fromPartial({ keys: list }), options);
    return res.entries.map((e, i) => entry(e, list[i] ?? ""));
  }

  /** Write one entry, under an optional condition; a failed condition is an outcome, not an error. */
  async set(key: string, value: BytesLike, options?: SetOptions): Promise<SetResult> {
    const res = await this.caller.unary(this.stub, "set", setRequest(key, value, options), options);
    return setResult(res);
  }

  /** Apply many writes, each atomic on its own; results in request order. */
  async setMany(items: { key: string; value: BytesLike; options?: SetOptions }[], options?: CallOptions): Promise<SetResult[]> {
    checkOptions(options, [], "cache.setMany");
    const requests = items.map((item, i) => setRequest(item.key, item.value, item.options, `cache.setMany item ${i}`));
    const res = await this.caller.unary(this.stub, "batchSet", BatchSetRequest.fromPartial({ requests }), options);
    return res.responses.map(setResult);
  }

  /** Remove one key or many; `ifVersion` (one key only) deletes only that version. */
  async delete(keys: string | string[], options?: CallOptions & { ifVersion?: Int64Like }): Promise<DeleteResult> {
    checkOptions(options, ["ifVersion"], "cache.delete");
    const ifVersion = options?.ifVersion === undefined ? 0n : toInt64(options.ifVersion, "ifVersion", true);
    const res = await this.caller.unary(this.stub, "delete", DeleteRequest.fromPartial({ keys: toTextList(keys, "keys"), ifVersion }), options);
    return {
      deletedCount: res.deletedCount,
      results: res.results.map((r) => ({
        key: r.key,
        outcome: enumName(DeleteOutcome, r.outcome, "DELETE_OUTCOME_") as DeleteKeyOutcome,
        version: r.version,
      })),
    };
  }

  /** Add a signed 64-bit delta (default 1n) to an integer value, creating it from 0 if absent. */
  async increment(key: string, delta: Int64Like = 1n, options?: CallOptions & { ttl?: number }): Promise<IncrementResult> {
    checkOptions(options, ["ttl"], "cache.increment");
    const res = await this.caller.unary(
      this.stub,
      "increment",
      IncrementRequest.fromPartial({ key: toText(key, "key"), delta: toInt64(delta, "delta"), ttl: durationFromMs(options?.ttl, "ttl") }),
      options,
    );
    return { value: res.value, version: res.version, created: res.created, expireTime: res.expireTime };
  }

  /** Give an existing entry a new TTL (milliseconds); `found` is false when there is none. */
  async touch(key: string, ttl?: number, options?: CallOptions): Promise<{ found: boolean; expireTime: Date | undefined }> {
    checkOptions(options, [], "cache.touch");
    const res = await this.caller.unary(this.stub, "touch", TouchRequest.fromPartial({ key: toText(key, "key"), ttl: durationFromMs(ttl, "ttl") }), options);
    return { found: res.found, expireTime: res.expireTime };
  }

  /**
   * Read a key or, on a miss, get the fill lease for it: one caller at a time computes the value and
   * sets it with `{leaseToken}`; the others wait on the server (up to `wait` ms) for that value.
   */
  async getOrLease(key: string, options?: CallOptions & { leaseTtl?: number; wait?: number }): Promise<FillLease> {
    checkOptions(options, ["leaseTtl", "wait"], "cache.getOrLease");
    const wait = durationFromMs(options?.wait, "wait");
    const res = await this.caller.unary(
      this.stub,
      "getOrLease",
      GetOrLeaseRequest.fromPartial({ key: toText(key, "key"), leaseTtl: durationFromMs(options?.leaseTtl, "leaseTtl"), wait }),
      options,
      options?.wait ?? 0,
    );
    return { entry: entry(res.entry, key), leaseToken: res.leaseToken, leaseExpireTime: res.leaseExpireTime, waited: res.waited };
  }

  /** Make every entry written with any of `tags` a miss, for every reader. */
  async invalidateTags(tags: string[], options?: CallOptions): Promise<number> {
    checkOptions(options, [], "cache.invalidateTags");
    const res = await this.caller.unary(this.stub, "invalidateTags", InvalidateTagsRequest.fromPartial({ tags: toTextList(tags, "tags") }), options);
    return res.tagCount;
  }
}
