// A subscription as an async iterator of events that survives disconnects: when the stream breaks
// (the server restarts, the connection drops, Redis is briefly unreachable, or the server ended it
// because this reader fell behind), it reconnects with backoff and resumes right after the last event
// it received for each topic, so the iterator yields every event exactly once, in order per topic.
// History that retention removed before it could be read is reported to `onGap`, never skipped
// silently. Closing it (close(), `break` out of a for-await loop, or its AbortSignal) cancels the call
// quietly: no 'error' ever reaches the event loop.
import type { ClientReadableStream, StatusObject } from "@grpc/grpc-js";
import { status as Code } from "@grpc/grpc-js";
import { type Caller, canceller } from "./call.js";
import { durationFromMs } from "./convert.js";
import { type CoordError, fromGrpcError } from "./errors.js";
import {
  type Event,
  type EventsServiceClient,
  type Gap,
  StartPosition,
  SubscribeRequest,
  type SubscribeResponse,
} from "./gen/coord/events/v1/events.js";

export type Start = "latest" | "earliest" | Date;

export interface SubscribeOptions {
  /** start is where topics without a cursor begin: "latest" (default), "earliest", or a Date. */
  start?: Start;
  /** after resumes topics after given event ids: {topic: id}, or an id when there is one topic. */
  after?: Record<string, string> | string;
  /** heartbeat is how long (ms) the server may stay silent before it sends a progress frame. */
  heartbeat?: number;
  /** volatile subscribes to the topics' volatile (Pub/Sub) events instead of the stored ones. */
  volatile?: boolean;
  /** onGap is told of history removed by retention before it could be read (default: a warning). */
  onGap?: (gap: Gap) => void;
  /** signal closes the subscription when aborted. */
  signal?: AbortSignal;
}
export const SUBSCRIBE_OPTIONS = ["start", "after", "heartbeat", "volatile", "onGap", "signal"] as const;

// Codes after which a subscription reconnects; the server's EVENTS_SUBSCRIBER_TOO_SLOW too.
const RESUMABLE = new Set<number>([Code.UNAVAILABLE, Code.INTERNAL, Code.UNKNOWN]);
const TOO_SLOW = "EVENTS_SUBSCRIBER_TOO_SLOW";
// Received events kept in memory before the stream is paused (flow control back to the server).
const HIGH_WATER = 1024;
// Without a heartbeat option the server sends a progress frame after 5 s of silence; a stream silent
// for much longer is dead even if TCP does not say so, and is resumed.
const DEFAULT_STALE_MS = 30_000;

function idKey(id: string): [bigint, bigint] {
  const [ms, seq] = id.split("-");
  return [BigInt(ms || "0"), BigInt(seq || "0")];
}

function later(a: string, b: string): boolean {
  const [x, y] = [idKey(a), idKey(b)];
  return x[0] > y[0] || (x[0] === y[0] && x[1] > y[1]);
}

export class Subscription implements AsyncIterableIterator<Event> {
  /** reconnects counts how many times the subscription resumed on a new stream. */
  reconnects = 0;

  // Positions of the last event received per topic (what a new stream resumes after), and of the
  // last one handed out (what the caller has seen: `cursors`).
  private readonly received = new Map<string, string>();
  private readonly handed = new Map<string, string>();
  private readonly queue: Event[] = [];
  private call: ClientReadableStream<SubscribeResponse> | undefined;
  private cancelCall: (() => void) | undefined;
  private openTime: Date | undefined;
  private failure: CoordError | undefined;
  private closed = false;
  private paused = false;
  private stale = false;
  private readonly wakers: (() => void)[] = [];
  private backoff = 50;
  private retryTimer: NodeJS.Timeout | undefined;
  private staleTimer: NodeJS.Timeout | undefined;
  private readonly staleAfter: number;

  /** @internal */
  constructor(
    private readonly stub: EventsServiceClient,
    private readonly caller: Caller,
    private readonly topics: string[],
    private readonly start: Start,
    after: Record<string, string>,
    private readonly heartbeat: number | undefined,
    private readonly volatile: boolean,
    private readonly onGap: ((gap: Gap) => void) | undefined,
    signal: AbortSignal | undefined,
  ) {
    for (const [topic, id] of Object.entries(after)) {
      this.received.set(topic, id);
      this.handed.set(topic, id);
    }
    this.staleAfter = heartbeat === undefined ? DEFAULT_STALE_MS : Math.max(1000, 3 * heartbeat);
    if (signal?.aborted) this.closed = true;
    signal?.addEventListener("abort", () => this.close(), { once: true });
    if (!this.closed) {
      caller.open.add(this);
      this.open();
    }
  }

  /** Topic -> id of the last event handed out (or a safe checkpoint): pass it back as `after`. */
  get cursors(): Record<string, string> {
    return Object.fromEntries(this.handed);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<Event, undefined>> {
    for (;;) {
      const event = this.queue.shift();
      if (event !== undefined) {
        if (event.id) this.handed.set(event.topic, event.id);
        if (this.paused && this.queue.length < HIGH_WATER / 2) {
          this.paused = false;
          this.call?.resume();
          this.watch();
        }
        return { value: event, done: false };
      }
      if (this.failure !== undefined) {
        const failure = this.failure;
        this.failure = undefined;
        this.closed = true;
        throw failure;
      }
      if (this.closed) return { value: undefined, done: true };
      await new Promise<void>((resolve) => this.wakers.push(resolve));
    }
  }

  /** Called by `break` in a for-await loop: closes the subscription. */
  async return(): Promise<IteratorResult<Event, undefined>> {
    this.close();
    return { value: undefined, done: true };
  }

  /** Stop: cancel the stream quietly; a pending next() resolves as done. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.caller.open.delete(this);
    this.queue.length = 0;
    clearTimeout(this.retryTimer);
    clearTimeout(this.staleTimer);
    this.cancelCall?.();
    this.notify();
  }

  private notify(): void {
    for (const wake of this.wakers.splice(0)) wake();
  }

  private request(): SubscribeRequest {
    const heartbeatInterval = durationFromMs(this.heartbeat, "heartbeat");
    if (this.volatile) {
      // No history: every (re)connection starts live.
      return SubscribeRequest.fromPartial({ topics: this.topics, start: StartPosition.START_POSITION_LATEST, heartbeatInterval, volatile: true });
    }
    let start = this.start === "earliest" ? StartPosition.START_POSITION_EARLIEST : StartPosition.START_POSITION_LATEST;
    let startTime: Date | undefined;
    if (this.start instanceof Date) {
      start = StartPosition.START_POSITION_AT_TIME;
      startTime = this.start;
    } else if (this.start === "latest" && this.openTime !== undefined) {
      // Resuming: a topic first seen while disconnected is read from when the first stream opened.
      start = StartPosition.START_POSITION_AT_TIME;
      startTime = this.openTime;
    }
    const cursors = [...this.received].sort(([a], [b]) => (a < b ? -1 : 1)).map(([topic, afterId]) => ({ topic, afterId }));
    return SubscribeRequest.fromPartial({ topics: this.topics, start, startTime, cursors, heartbeatInterval, volatile: false });
  }

  private open(): void {
    const call = this.stub.subscribe(this.request(), this.caller.metadataFor());
    this.call = call;
    this.cancelCall = canceller(call);
    this.stale = false;
    this.watch();
    call.on("data", (frame: SubscribeResponse) => {
      if (call !== this.call || this.closed) return;
      this.backoff = 50; // any frame proves the stream alive
      this.watch();
      this.frame(frame);
    });
    // Always handled: errors are read from 'status' (emitted in every case), never thrown.
    call.on("error", () => {});
    call.on("status", (status: StatusObject) => {
      if (call === this.call) this.ended(status);
    });
  }

  private frame(frame: SubscribeResponse): void {
    const f = frame.frame;
    if (f === undefined) return;
    switch (f.$case) {
      case "events":
        for (const event of f.value.events) {
          const last = this.received.get(event.topic);
          // Never hand out an event twice, whatever a resumed stream sends again.
          if (event.id && last !== undefined && !later(event.id, last)) continue;
          if (event.id) this.received.set(event.topic, event.id);
          this.queue.push(event);
        }
        if (this.queue.length >= HIGH_WATER && !this.paused) {
          this.paused = true;
          clearTimeout(this.staleTimer); // a paused stream is silent by our choice
          this.call?.pause();
        }
        this.notify();
        break;
      case "subscribed":
        this.openTime ??= f.value.openTime;
        for (const start of f.value.starts) {
          if (!this.received.has(start.topic)) this.received.set(start.topic, start.afterId);
          if (!this.handed.has(start.topic)) this.handed.set(start.topic, start.afterId);
        }
        break;
      case "progress":
        for (const cursor of f.value.cursors) {
          const last = this.received.get(cursor.topic);
          if (last === undefined || later(cursor.afterId, last)) this.received.set(cursor.topic, cursor.afterId);
          // A checkpoint is safe for the caller only when nothing of that topic waits in the queue.
          if (!this.queue.some((e) => e.topic === cursor.topic)) this.handed.set(cursor.topic, this.received.get(cursor.topic) ?? cursor.afterId);
        }
        break;
      case "gap":
        if (this.onGap !== undefined) this.onGap(f.value);
        else process.emitWarning(`events of ${JSON.stringify(f.value.topic)} after ${f.value.afterId} were removed before they could be read`);
        break;
    }
  }

  // A stream that stays silent past `staleAfter` (no event, no progress frame) is cut and resumed.
  private watch(): void {
    clearTimeout(this.staleTimer);
    if (this.closed || this.paused) return;
    this.staleTimer = setTimeout(() => {
      this.stale = true;
      this.cancelCall?.();
    }, this.staleAfter);
    this.staleTimer.unref();
  }

  private ended(status: StatusObject): void {
    clearTimeout(this.staleTimer);
    this.call = undefined;
    this.cancelCall = undefined;
    if (this.closed) return;
    const error = status.code === Code.OK ? undefined : fromGrpcError(status);
    const resumable =
      this.stale || error === undefined || RESUMABLE.has(error.code) || error.reason === TOO_SLOW;
    if (!resumable && error?.code === Code.CANCELLED) {
      this.close(); // cancelled from elsewhere: end quietly
      return;
    }
    if (!resumable) {
      this.caller.open.delete(this);
      this.failure = error;
      this.notify();
      return;
    }
    // Reconnect after a jittered backoff, doubling from 50 ms to 2 s; reset by any frame.
    const delay = this.backoff / 2 + Math.random() * (this.backoff / 2);
    this.backoff = Math.min(this.backoff * 2, 2000);
    this.retryTimer = setTimeout(() => {
      if (this.closed) return;
      this.reconnects += 1;
      this.open();
    }, delay);
  }
}
