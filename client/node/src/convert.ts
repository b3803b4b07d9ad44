// Checks and conversions between what a JavaScript caller passes and the wire types, done before a
// call is made so that a mistake fails here with a TypeError or RangeError that names the field,
// instead of an opaque serialization failure or a silently wrong request:
//   durations are numbers of milliseconds (never strings like "30s");
//   64-bit integers are BigInt (or a safe-integer number), never strings;
//   bytes are a Uint8Array/Buffer, or a string taken as UTF-8 (never base64-decoded);
//   option objects are checked for unknown names (a snake_case `if_version` is refused, not dropped).
import type { Duration } from "./gen/google/protobuf/duration.js";

/** Bytes as a caller gives them: a Uint8Array (Buffer included), or a string sent as its UTF-8. */
export type BytesLike = Uint8Array | string;
/** A 64-bit integer as a caller gives it: a BigInt, or a number that is a safe integer. */
export type Int64Like = bigint | number;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function describe(value: unknown): string {
  if (typeof value === "string") return `string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? `${value.constructor?.name ?? "an"} object` : `${typeof value} ${String(value)}`;
}

/** A duration in milliseconds as a google.protobuf.Duration; undefined stays unset (server default). */
export function durationFromMs(ms: unknown, field: string): Duration | undefined {
  if (ms === undefined || ms === null) return undefined;
  if (typeof ms !== "number") {
    throw new TypeError(`${field} must be a number of milliseconds (30_000 for 30 s), got ${describe(ms)}`);
  }
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`${field} must be a finite, non-negative number of milliseconds, got ${ms}`);
  }
  const whole = Math.floor(ms);
  let seconds = Math.floor(whole / 1000);
  let nanos = Math.round((ms - seconds * 1000) * 1e6);
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  return { seconds: BigInt(seconds), nanos };
}

/** A google.protobuf.Duration in milliseconds (0 when unset). */
export function msFromDuration(d: Duration | undefined): number {
  return d === undefined ? 0 : Number(d.seconds) * 1000 + d.nanos / 1e6;
}

/** Bytes for a `bytes` field: a Uint8Array as is (no copy), a string as its UTF-8. */
export function toBytes(value: unknown, field: string): Buffer {
  if (typeof value === "string") return Buffer.from(value, "utf8");
  if (value instanceof Uint8Array) {
    return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  throw new TypeError(`${field} must be a Uint8Array, a Buffer or a string (sent as UTF-8), got ${describe(value)}`);
}

/** A 64-bit integer field: BigInt, or a number only when it is a safe integer (no silent rounding). */
export function toInt64(value: unknown, field: string, unsigned = false): bigint {
  let big: bigint;
  if (typeof value === "bigint") {
    big = value;
  } else if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(`${field} must be an integer within ±(2^53 - 1) as a number, or a BigInt; got ${value}`);
    }
    big = BigInt(value);
  } else {
    throw new TypeError(`${field} must be a BigInt (or a safe-integer number), got ${describe(value)}`);
  }
  const [min, max] = unsigned ? [0n, UINT64_MAX] : [INT64_MIN, INT64_MAX];
  if (big < min || big > max) {
    throw new RangeError(`${field} is out of the ${unsigned ? "uint64" : "int64"} range: ${big}`);
  }
  return big;
}

/** A 32-bit unsigned integer field (counts, limits). */
export function toUint32(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(`${field} must be an integer number, got ${describe(value)}`);
  }
  if (value < 0 || value > 0xffffffff) throw new RangeError(`${field} is out of the uint32 range: ${value}`);
  return value;
}

/** A string field: a string, or "" when undefined. */
export function toText(value: unknown, field: string): string {
  if (value === undefined) return "";
  if (typeof value !== "string") throw new TypeError(`${field} must be a string, got ${describe(value)}`);
  return value;
}

/** A list of strings (a single string is taken as a list of one). */
export function toTextList(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list)) throw new TypeError(`${field} must be a string or an array of strings, got ${describe(value)}`);
  return list.map((item, i) => toText(item, `${field}[${i}]`));
}

/** A boolean option (undefined is false). */
export function toBool(value: unknown, field: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") throw new TypeError(`${field} must be a boolean, got ${describe(value)}`);
  return value;
}

/** A Date (for a google.protobuf.Timestamp field). */
export function toDate(value: unknown, field: string): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new TypeError(`${field} must be a valid Date, got ${describe(value)}`);
  }
  return value;
}

/** A map of names to bytes (session attributes); each value a Uint8Array or a UTF-8 string. */
export function toBytesMap(value: unknown, field: string): Record<string, Buffer> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`${field} must be an object of names to bytes or strings, got ${describe(value)}`);
  }
  const out: Record<string, Buffer> = {};
  for (const [name, v] of Object.entries(value)) out[name] = toBytes(v, `${field}.${name}`);
  return out;
}

/** A map of names to strings (event headers). */
export function toTextMap(value: unknown, field: string): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`${field} must be an object of names to strings, got ${describe(value)}`);
  }
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(value)) out[name] = toText(v, `${field}.${name}`);
  return out;
}

function camel(name: string): string {
  return name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Refuse option names this call does not know: a misspelt or snake_case option (`if_version`) would
 * otherwise be ignored silently and the call would do something else than meant.
 */
export function checkOptions(options: unknown, known: readonly string[], where: string): void {
  if (options === undefined) return;
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(`${where}: options must be an object, got ${describe(options)}`);
  }
  for (const name of Object.keys(options)) {
    if (known.includes(name) || name === "timeoutMs" || name === "signal") continue;
    const hint = known.includes(camel(name)) ? ` (did you mean '${camel(name)}'?)` : "";
    throw new TypeError(`${where}: unknown option '${name}'${hint}; known: ${[...known, "timeoutMs", "signal"].join(", ")}`);
  }
}

/** The lower-case name of an enum value without its prefix: WRITE_OUTCOME_STORED -> "stored". */
export function enumName(names: Record<number, string>, value: number, prefix: string): string {
  const name = names[value] ?? `${prefix}${value}`;
  return (name.startsWith(prefix) ? name.slice(prefix.length) : name).toLowerCase();
}
