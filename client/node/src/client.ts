// One connection to Coord: a single @grpc/grpc-js channel configured with the shipped service config
// (per-method timeouts, retries of the idempotent methods on UNAVAILABLE, retry throttling), shared by
// every service's generated client, and the thin layer over each service.
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { CacheApi } from "./cache.js";
import { type CallOptions, Caller, type RequestOf, type ResponseOf, type UnaryName } from "./call.js";
import { EventsApi } from "./events.js";
import { AdminServiceClient } from "./gen/coord/admin/v1/admin.js";
import { CacheServiceClient } from "./gen/coord/cache/v1/cache.js";
import { ListServiceClient } from "./gen/coord/collections/v1/list.js";
import { MapServiceClient } from "./gen/coord/collections/v1/map.js";
import { SetServiceClient } from "./gen/coord/collections/v1/set.js";
import { SortedSetServiceClient } from "./gen/coord/collections/v1/sorted_set.js";
import { ElectionServiceClient } from "./gen/coord/election/v1/election.js";
import { EventsServiceClient } from "./gen/coord/events/v1/events.js";
import { LockServiceClient } from "./gen/coord/lock/v1/lock.js";
import { RateLimitServiceClient } from "./gen/coord/ratelimit/v1/ratelimit.js";
import { SessionServiceClient } from "./gen/coord/session/v1/session.js";
import { SERVICE_CONFIG_JSON } from "./gen/service_config.js";
import { LockApi } from "./lock.js";
import { RateLimitApi } from "./ratelimit.js";
import { SessionApi } from "./session.js";

export { SERVICE_CONFIG_JSON };

export interface ConnectOptions {
  /** tls: true for TLS with the system's CAs, or the CA's PEM (a string or Buffer) to check the server against. */
  tls?: boolean | string | Buffer;
  /** credentials replaces `tls` with channel credentials of your own (mutual TLS...). */
  credentials?: grpc.ChannelCredentials;
  /** token (an API key or a JWT) is sent as `authorization: Bearer <token>` with every call. */
  token?: string;
  /** timeoutMs is the default deadline of each unary call (30 000 unless set; 0: none). */
  timeoutMs?: number;
  /**
   * maxInFlight bounds the unary calls in flight on the connection (512 unless set); more wait in
   * the client, in order, their deadlines running. Streams are not counted.
   */
  maxInFlight?: number;
  /** serviceConfig replaces the shipped service config (a JSON string). */
  serviceConfig?: string;
  /** channelOptions are added to (and override) the channel's options. */
  channelOptions?: grpc.ChannelOptions;
}

/** The channel options Coord's clients use: the shipped service config, retries on. */
export function channelOptions(serviceConfig: string = SERVICE_CONFIG_JSON): grpc.ChannelOptions {
  return {
    "grpc.service_config": serviceConfig,
    // The shipped config is the one to apply, whatever a resolver might offer.
    "grpc.service_config_disable_resolution": 1,
    "grpc.enable_retries": 1,
    "grpc.max_receive_message_length": 64 << 20,
    "grpc.max_send_message_length": 64 << 20,
  };
}

function channelCredentials(options: ConnectOptions): grpc.ChannelCredentials {
  if (options.credentials !== undefined) return options.credentials;
  const tls = options.tls;
  if (tls === undefined || tls === false) return grpc.credentials.createInsecure();
  if (tls === true) return grpc.credentials.createSsl();
  return grpc.credentials.createSsl(typeof tls === "string" ? Buffer.from(tls) : tls);
}

/** The generated clients of every service, on the connection's channel, for what the layer does not wrap. */
export interface Stubs {
  cache: CacheServiceClient;
  lock: LockServiceClient;
  ratelimit: RateLimitServiceClient;
  session: SessionServiceClient;
  events: EventsServiceClient;
  map: MapServiceClient;
  list: ListServiceClient;
  set: SetServiceClient;
  sortedSet: SortedSetServiceClient;
  election: ElectionServiceClient;
  admin: AdminServiceClient;
}

export class Coord {
  readonly target: string;
  readonly cache: CacheApi;
  readonly lock: LockApi;
  readonly ratelimit: RateLimitApi;
  readonly session: SessionApi;
  readonly events: EventsApi;
  /** stubs are the generated clients, sharing this connection's channel, deadline and credential. */
  readonly stubs: Stubs;
  private readonly channel: grpc.Channel;
  private readonly caller: Caller;

  constructor(target: string, options: ConnectOptions = {}) {
    const known = ["tls", "credentials", "token", "timeoutMs", "maxInFlight", "serviceConfig", "channelOptions"];
    for (const name of Object.keys(options)) {
      if (!known.includes(name)) throw new TypeError(`connect: unknown option '${name}'; known: ${known.join(", ")}`);
    }
    if (typeof target !== "string" || target === "") throw new TypeError("connect: target must be a non-empty 'host:port' string");
    const serviceConfig = options.serviceConfig ?? SERVICE_CONFIG_JSON;
    JSON.parse(serviceConfig); // a broken config fails here, not as an opaque channel error later
    this.target = target;
    const credentials = channelCredentials(options);
    this.channel = new grpc.Channel(target, credentials, { ...channelOptions(serviceConfig), ...options.channelOptions });
    const token = options.token;
    if (token !== undefined && (typeof token !== "string" || token === "")) throw new TypeError("connect: token must be a non-empty string");
    const metadata = (): grpc.Metadata => {
      const md = new grpc.Metadata();
      if (token !== undefined) md.set("authorization", `Bearer ${token}`);
      return md;
    };
    const maxInFlight = options.maxInFlight ?? 512;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError(`connect: maxInFlight must be a positive integer, got ${maxInFlight}`);
    this.caller = new Caller(metadata, options.timeoutMs ?? 30_000, maxInFlight);
    const clientOptions = { channelOverride: this.channel };
    const make = <T>(Client: new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>) => T): T =>
      new Client(target, credentials, clientOptions);
    this.stubs = {
      cache: make(CacheServiceClient),
      lock: make(LockServiceClient),
      ratelimit: make(RateLimitServiceClient),
      session: make(SessionServiceClient),
      events: make(EventsServiceClient),
      map: make(MapServiceClient),
      list: make(ListServiceClient),
      set: make(SetServiceClient),
      sortedSet: make(SortedSetServiceClient),
      election: make(ElectionServiceClient),
      admin: make(AdminServiceClient),
    };
    this.cache = new CacheApi(this.stubs.cache, this.caller);
    this.lock = new LockApi(this.stubs.lock, this.caller);
    this.ratelimit = new RateLimitApi(this.stubs.ratelimit, this.caller);
    this.session = new SessionApi(this.stubs.session, this.caller);
    this.events = new EventsApi(this.stubs.events, this.caller);
  }

  /**
   * A unary call of a generated client, as a promise, with this connection's deadline, credential
   * and typed errors: `await coord.unary(coord.stubs.map, "get", MapGetRequest.fromPartial({...}))`.
   */
  unary<C, K extends UnaryName<C>>(stub: C, method: K, request: RequestOf<C[K]>, options?: CallOptions): Promise<ResponseOf<C[K]>> {
    return this.caller.unary(stub, method, request, options);
  }

  /** The metadata of one call (the credential, when there is one), for calls made on `stubs` directly. */
  metadata(): grpc.Metadata {
    return this.caller.metadataFor();
  }

  /**
   * Close the connection: subscriptions end (their loops finish), holds end (the server releases
   * their locks at once), and unary calls still in flight are left to finish.
   */
  close(): void {
    for (const stream of [...this.caller.open]) stream.close();
    for (const stub of Object.values(this.stubs)) (stub as grpc.Client).close();
    this.channel.close();
  }
}

/**
 * Connect to Coord at `target` ("host:port"; default: env COORD_TARGET, else 127.0.0.1:50051).
 * The connection is lazy: nothing is dialled until the first call.
 */
export function connect(target?: string, options?: ConnectOptions): Coord {
  return new Coord(target ?? process.env.COORD_TARGET ?? "127.0.0.1:50051", options);
}

/** The package's version (equal to Coord's, and to the protos it was generated from). */
export const VERSION: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
