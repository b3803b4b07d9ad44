// @coord/client: Coord's client for Node.js.
//
//   import { connect } from "@coord/client";
//   const coord = connect("127.0.0.1:50051");
//   await coord.cache.set("greeting", "hello", { ttl: 60_000 });
//   console.log((await coord.cache.get("greeting")).value.toString());
//   coord.close();
//
// Durations are numbers of milliseconds, timestamps are Dates, 64-bit integers are BigInt, bytes are
// Buffers (a string is sent as UTF-8). Failed calls reject with CoordError subclasses that carry the
// server's `reason`, `fieldViolations` and `retryAfter`. The generated messages and clients are under
// "@coord/client/gen/coord/<service>/v1/<file>" (for example .../gen/coord/collections/v1/map).
export { connect, Coord, channelOptions, SERVICE_CONFIG_JSON, VERSION, type ConnectOptions, type Stubs } from "./client.js";
export type { CallOptions } from "./call.js";
export type { BytesLike, Int64Like } from "./convert.js";
export * from "./errors.js";
export type { CacheApi, DeleteKeyOutcome, DeleteResult, Entry, FillLease, IncrementResult, SetOptions, SetOutcome, SetResult } from "./cache.js";
export type { AcquireOptions, AcquireResult, ExtendResultOutcome, Grant, Holder, LockApi, Mode, ReleaseOutcome } from "./lock.js";
export { Lease, LockLost, LockNotAcquired, type HoldOptions, type LostReasonName } from "./hold.js";
export type { AlgorithmName, CheckOptions, CheckResult, Descriptor, DescriptorStatus, RateLimitApi, Rule } from "./ratelimit.js";
export type { ClientInfo, CreateOptions, InvalidReasonName, RotateResult, Session, SessionApi, UpdateResult, Validation } from "./session.js";
export type { Event, EventsApi, PublishOptions, Published, TopicInfo } from "./events.js";
export { Subscription, type Start, type SubscribeOptions } from "./subscription.js";
export type { Gap } from "./gen/coord/events/v1/events.js";
