// Unary calls as promises: a deadline on every call, cancellation by AbortSignal, and every failure
// turned into a CoordError (see errors.ts).
import type { CallOptions as GrpcCallOptions, ClientUnaryCall, Metadata, ServiceError } from "@grpc/grpc-js";
import { status as Code } from "@grpc/grpc-js";
import { errorFromStatus, fromGrpcError } from "./errors.js";

/** What every call accepts besides its own options. */
export interface CallOptions {
  /** timeoutMs bounds the call (default: the client's `timeoutMs`, 30 s unless configured). */
  timeoutMs?: number;
  /** signal cancels the call when aborted; the promise then rejects with Cancelled. */
  signal?: AbortSignal;
}

type Callback<Res> = (error: ServiceError | null, response?: Res) => void;

/** A generated client's unary method, in the overload that takes metadata and call options. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: Callback<Res>,
) => ClientUnaryCall;

/** The names of a generated client's unary methods. */
export type UnaryName<C> = {
  [K in keyof C]: C[K] extends UnaryMethod<never, unknown> ? K : never;
}[keyof C] &
  string;
export type RequestOf<M> = M extends (request: infer Req, metadata: Metadata, options: Partial<GrpcCallOptions>, callback: Callback<infer _Res>) => ClientUnaryCall ? Req : never;
export type ResponseOf<M> = M extends (request: never, metadata: Metadata, options: Partial<GrpcCallOptions>, callback: (error: ServiceError | null, response: infer Res) => void) => ClientUnaryCall ? Res : never;

/** The deadline of a call: its own timeout, else the client's default (none when both are 0). */
export function deadline(options: CallOptions | undefined, defaultTimeoutMs: number, extraMs = 0): Date | undefined {
  const timeout = options?.timeoutMs ?? defaultTimeoutMs;
  if (typeof timeout !== "number" || !Number.isFinite(timeout) || timeout < 0) {
    throw new RangeError(`timeoutMs must be a finite, non-negative number of milliseconds, got ${String(timeout)}`);
  }
  return timeout === 0 ? undefined : new Date(Date.now() + timeout + extraMs);
}

/** A stream the connection ends when it is closed (a subscription, a lease). */
export interface Closable {
  close(): void;
}

/**
 * Makes the unary calls of one connection: each with a deadline, cancellable, its failure typed, and
 * at most `maxInFlight` of them in flight on the channel at once. The rest wait in the client, in
 * order: one HTTP/2 connection does not take an unbounded burst well (calls past a few thousand end
 * with a bare CANCELLED, and a write's caller cannot tell whether it was applied). A waiting call's
 * deadline counts from when it was made; one that expires while waiting fails with
 * DEADLINE_EXCEEDED without ever being sent.
 */
export class Caller {
  /** open holds the streams in progress, so that closing the connection ends them. */
  readonly open = new Set<Closable>();
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    /** metadataFor makes the metadata of one call (the credential, when the client has one). */
    readonly metadataFor: () => Metadata,
    readonly defaultTimeoutMs: number,
    readonly maxInFlight = 512,
  ) {}

  /**
   * Call `stub[method](request)` and resolve with its response; `extraMs` lengthens the deadline for
   * a call that waits on the server by design (a lock Acquire with `wait`).
   */
  async unary<C, K extends UnaryName<C>>(
    stub: C,
    method: K,
    request: RequestOf<C[K]>,
    options?: CallOptions,
    extraMs = 0,
  ): Promise<ResponseOf<C[K]>> {
    const fn = stub[method] as unknown as UnaryMethod<RequestOf<C[K]>, ResponseOf<C[K]>>;
    const signal = options?.signal;
    const until = deadline(options, this.defaultTimeoutMs, extraMs);
    const held = await this.slot(until, signal);
    try {
      if (signal?.aborted) throw errorFromStatus(Code.CANCELLED, "cancelled before it was sent", [], { cause: signal.reason });
      if (!held || (until !== undefined && until.getTime() <= Date.now())) {
        throw errorFromStatus(Code.DEADLINE_EXCEEDED, "the deadline passed while the call waited for a slot; it was not sent", []);
      }
      const callOptions: Partial<GrpcCallOptions> = until === undefined ? {} : { deadline: until };
      return await new Promise((resolve, reject) => {
        const call = fn.call(stub, request, this.metadataFor(), callOptions, (error, response) => {
          signal?.removeEventListener("abort", cancel);
          if (error) reject(fromGrpcError(error));
          else resolve(response as ResponseOf<C[K]>);
        });
        const cancel = canceller(call);
        signal?.addEventListener("abort", cancel, { once: true });
      });
    } finally {
      if (held) this.release();
    }
  }

  // Wait for a slot, first come first served: true once the call holds one, false when it gave up
  // waiting (its deadline passed, or its signal was aborted) and holds none. A slot freed by a call
  // that ends is handed to the oldest waiter directly, so the count never drops and rises in between.
  private slot(until: Date | undefined, signal: AbortSignal | undefined): Promise<boolean> {
    if (this.inFlight < this.maxInFlight && this.waiting.length === 0) {
      this.inFlight += 1;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (held: boolean): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", giveUp);
        resolve(held);
      };
      const take = (): void => settle(true);
      const giveUp = (): void => {
        const i = this.waiting.indexOf(take);
        if (i >= 0) {
          this.waiting.splice(i, 1);
          settle(false);
        }
      };
      this.waiting.push(take);
      if (until !== undefined) timer = setTimeout(giveUp, Math.max(0, until.getTime() - Date.now()));
      signal?.addEventListener("abort", giveUp, { once: true });
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.inFlight -= 1;
  }
}

/** What `canceller` needs of a streaming call. */
interface StreamingCall {
  cancel(): void;
  once(event: "metadata" | "status", listener: () => void): unknown;
}

/**
 * A function that cancels a streaming call, but never in the same turn of the event loop that made
 * it: @grpc/grpc-js (1.14) leaves the connection open for good, and the process alive, when a call is
 * cancelled before it started on a connection. Until the server's headers arrive, the cancel waits
 * for them (or for one second, whichever comes first).
 */
export function canceller(call: StreamingCall): () => void {
  let started = false;
  let wanted = false;
  call.once("metadata", () => {
    started = true;
    if (wanted) call.cancel();
  });
  call.once("status", () => {
    started = true;
  });
  return () => {
    if (started) {
      call.cancel();
      return;
    }
    wanted = true;
    setTimeout(() => call.cancel(), 1000).unref();
  };
}
