// coord.session.v1.SessionService: server-side sessions behind opaque tokens.
import type { CallOptions, Caller } from "./call.js";
import {
  type BytesLike,
  checkOptions,
  durationFromMs,
  enumName,
  type Int64Like,
  toBool,
  toBytesMap,
  toInt64,
  toText,
  toTextList,
  toUint32,
} from "./convert.js";
import {
  type ClientInfo,
  CreateRequest,
  InvalidReason,
  LimitPolicy,
  ListSessionsRequest,
  RevokeAllRequest,
  RevokeRequest,
  RotateRequest,
  type Session,
  type SessionServiceClient,
  UpdateRequest,
  ValidateRequest,
} from "./gen/coord/session/v1/session.js";

export type { Session, ClientInfo };

export type InvalidReasonName = "unknown" | "idle_expired" | "absolute_expired" | "revoked" | "evicted" | "superseded";

export interface CreateOptions extends CallOptions {
  /** attributes are stored with the session: bytes, or strings sent as UTF-8. */
  attributes?: Record<string, BytesLike>;
  /** idleTimeout and absoluteTimeout are in milliseconds (default: the server's). */
  idleTimeout?: number;
  absoluteTimeout?: number;
  maxSessions?: number;
  limitPolicy?: "reject" | "evict_oldest";
  client?: Partial<ClientInfo>;
}
const CREATE_OPTIONS = ["attributes", "idleTimeout", "absoluteTimeout", "maxSessions", "limitPolicy", "client"] as const;

export type Validation = { valid: true; session: Session } | { valid: false; reason: InvalidReasonName };

export type UpdateResult =
  | { outcome: "updated"; version: bigint; incrementResults: Record<string, bigint> }
  | { outcome: "conflict"; currentVersion: bigint }
  | { outcome: "invalid"; reason: InvalidReasonName };

export type RotateResult =
  | { rotated: true; token: string; session: Session | undefined; oldTokenExpireTime: Date | undefined }
  | { rotated: false; reason: InvalidReasonName };

const reason = (value: InvalidReason): InvalidReasonName => enumName(InvalidReason, value, "INVALID_REASON_") as InvalidReasonName;

function clientInfo(value: Partial<ClientInfo> | undefined): ClientInfo | undefined {
  if (value === undefined) return undefined;
  checkOptions(value, ["ip", "userAgent", "label"], "client");
  return { ip: toText(value.ip, "client.ip"), userAgent: toText(value.userAgent, "client.userAgent"), label: toText(value.label, "client.label") };
}

export class SessionApi {
  constructor(
    readonly stub: SessionServiceClient,
    private readonly caller: Caller,
  ) {}

  /** Create a session for `subject`; the token is shown once (Coord keeps only its hash). */
  async create(
    subject: string,
    options?: CreateOptions,
  ): Promise<{ token: string; session: Session | undefined; evictedSessionIds: string[] }> {
    checkOptions(options, CREATE_OPTIONS, "session.create");
    const policy = options?.limitPolicy;
    if (policy !== undefined && policy !== "reject" && policy !== "evict_oldest") {
      throw new TypeError(`limitPolicy must be "reject" or "evict_oldest", got ${JSON.stringify(policy)}`);
    }
    const res = await this.caller.unary(
      this.stub,
      "create",
      CreateRequest.fromPartial({
        subject: toText(subject, "subject"),
        attributes: toBytesMap(options?.attributes, "attributes"),
        idleTimeout: durationFromMs(options?.idleTimeout, "idleTimeout"),
        absoluteTimeout: durationFromMs(options?.absoluteTimeout, "absoluteTimeout"),
        maxSessions: options?.maxSessions === undefined ? 0 : toUint32(options.maxSessions, "maxSessions"),
        limitPolicy:
          policy === "reject" ? LimitPolicy.LIMIT_POLICY_REJECT : policy === "evict_oldest" ? LimitPolicy.LIMIT_POLICY_EVICT_OLDEST : LimitPolicy.LIMIT_POLICY_UNSPECIFIED,
        client: clientInfo(options?.client),
      }),
      options,
    );
    return { token: res.token, session: res.session, evictedSessionIds: res.evictedSessionIds };
  }

  /** Check a token; an invalid one is `{valid: false, reason}`, not an error. */
  async validate(token: string, options?: CallOptions & { touch?: boolean; attributeNames?: string[] }): Promise<Validation> {
    checkOptions(options, ["touch", "attributeNames"], "session.validate");
    const res = await this.caller.unary(
      this.stub,
      "validate",
      ValidateRequest.fromPartial({ token: toText(token, "token"), touch: toBool(options?.touch, "touch"), attributeNames: toTextList(options?.attributeNames, "attributeNames") }),
      options,
    );
    const r = res.result;
    if (r?.$case === "session") return { valid: true, session: r.value };
    return { valid: false, reason: r?.$case === "invalid" ? reason(r.value.reason) : "unknown" };
  }

  /** Change a session's attributes: set, remove, increment (64-bit), optionally at a version. */
  async update(
    token: string,
    changes: { set?: Record<string, BytesLike>; remove?: string[]; increment?: Record<string, Int64Like>; ifVersion?: Int64Like; touch?: boolean },
    options?: CallOptions,
  ): Promise<UpdateResult> {
    checkOptions(changes, ["set", "remove", "increment", "ifVersion", "touch"], "session.update");
    checkOptions(options, [], "session.update");
    const increment: Record<string, bigint> = {};
    for (const [name, delta] of Object.entries(changes.increment ?? {})) increment[name] = toInt64(delta, `increment.${name}`);
    const res = await this.caller.unary(
      this.stub,
      "update",
      UpdateRequest.fromPartial({
        token: toText(token, "token"),
        set: toBytesMap(changes.set, "set"),
        remove: toTextList(changes.remove, "remove"),
        increment,
        ifVersion: changes.ifVersion === undefined ? undefined : toInt64(changes.ifVersion, "ifVersion", true),
        touch: toBool(changes.touch, "touch"),
      }),
      options,
    );
    const r = res.result;
    if (r?.$case === "updated") return { outcome: "updated", version: r.value.version, incrementResults: r.value.incrementResults };
    if (r?.$case === "conflict") return { outcome: "conflict", currentVersion: r.value.currentVersion };
    return { outcome: "invalid", reason: r?.$case === "invalid" ? reason(r.value.reason) : "unknown" };
  }

  /** Replace a token by a new one (after a login); the old one keeps working for `grace` ms. */
  async rotate(token: string, options?: CallOptions & { grace?: number }): Promise<RotateResult> {
    checkOptions(options, ["grace"], "session.rotate");
    const res = await this.caller.unary(this.stub, "rotate", RotateRequest.fromPartial({ token: toText(token, "token"), grace: durationFromMs(options?.grace, "grace") }), options);
    const r = res.result;
    if (r?.$case === "rotated") {
      return { rotated: true, token: r.value.token, session: r.value.session, oldTokenExpireTime: r.value.oldTokenExpireTime };
    }
    return { rotated: false, reason: r?.$case === "invalid" ? reason(r.value.reason) : "unknown" };
  }

  /** End a session by its token or its id; true when it existed. */
  async revoke(target: { token: string } | { sessionId: string }, options?: CallOptions): Promise<boolean> {
    checkOptions(options, [], "session.revoke");
    checkOptions(target, ["token", "sessionId"], "session.revoke target");
    const t = target as { token?: string; sessionId?: string };
    if ((t.token === undefined) === (t.sessionId === undefined)) throw new TypeError("session.revoke: give exactly one of token and sessionId");
    const res = await this.caller.unary(
      this.stub,
      "revoke",
      RevokeRequest.fromPartial({ target: t.token !== undefined ? { $case: "token", value: toText(t.token, "token") } : { $case: "sessionId", value: toText(t.sessionId, "sessionId") } }),
      options,
    );
    return res.revoked;
  }

  /** A page of a subject's live sessions. */
  async list(subject: string, options?: CallOptions & { pageSize?: number; pageToken?: string }): Promise<{ sessions: Session[]; nextPageToken: string }> {
    checkOptions(options, ["pageSize", "pageToken"], "session.list");
    const res = await this.caller.unary(
      this.stub,
      "listSessions",
      ListSessionsRequest.fromPartial({ subject: toText(subject, "subject"), pageSize: options?.pageSize ?? 0, pageToken: toText(options?.pageToken, "pageToken") }),
      options,
    );
    return { sessions: res.sessions, nextPageToken: res.nextPageToken };
  }

  /** End every session of a subject (but `exceptSessionId`); the number ended. */
  async revokeAll(subject: string, options?: CallOptions & { exceptSessionId?: string }): Promise<number> {
    checkOptions(options, ["exceptSessionId"], "session.revokeAll");
    const res = await this.caller.unary(
      this.stub,
      "revokeAll",
      RevokeAllRequest.fromPartial({ subject: toText(subject, "subject"), exceptSessionId: toText(options?.exceptSessionId, "exceptSessionId") }),
      options,
    );
    return res.revokedCount;
  }
}
