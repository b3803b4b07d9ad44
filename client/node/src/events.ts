// coord.events.v1.EventsService: durable topics with resumable subscriptions.
import type { CallOptions, Caller } from "./call.js";
import { type BytesLike, checkOptions, msFromDuration, toBool, toBytes, toDate, toText, toTextList, toTextMap, toUint32 } from "./convert.js";
import { BatchPublishRequest, type Event, type EventsServiceClient, GetTopicRequest, PublishRequest, type PublishResponse } from "./gen/coord/events/v1/events.js";
import { type Start, type SubscribeOptions, SUBSCRIBE_OPTIONS, Subscription } from "./subscription.js";

export type { Event };

export interface PublishOptions extends CallOptions {
  contentType?: string;
  headers?: Record<string, string>;
  /** dedupId makes a retried publish safe: the same id within the dedup window appends nothing. */
  dedupId?: string;
  /** volatile sends the event over Pub/Sub to the subscribers connected now, without storing it. */
  volatile?: boolean;
}
const PUBLISH_OPTIONS = ["contentType", "headers", "dedupId", "volatile"] as const;

export interface Published {
  /** id is the event's id: the resume cursor of a subscriber that processed it. */
  id: string;
  duplicate: boolean;
  publishTime: Date | undefined;
  sequence: bigint;
  receivers: number;
}

export interface TopicInfo {
  name: string;
  exists: boolean;
  length: bigint;
  firstId: string;
  lastId: string;
  entriesAdded: bigint;
  lastRemovedId: string;
  retention: { maxLength: bigint; maxAge: number } | undefined;
  groups: { name: string; consumers: bigint; pending: bigint; lastDeliveredId: string; lag: bigint; lagKnown: boolean }[];
}

function publishRequest(topic: string, data: BytesLike, options: PublishOptions = {}, where = "events.publish"): PublishRequest {
  checkOptions(options, PUBLISH_OPTIONS, where);
  return PublishRequest.fromPartial({
    topic: toText(topic, "topic"),
    data: toBytes(data, "data"),
    contentType: toText(options.contentType, "contentType"),
    headers: toTextMap(options.headers, "headers"),
    dedupId: toText(options.dedupId, "dedupId"),
    volatile: toBool(options.volatile, "volatile"),
  });
}

function published(pb: PublishResponse): Published {
  return { id: pb.id, duplicate: pb.duplicate, publishTime: pb.publishTime, sequence: pb.sequence, receivers: pb.receivers };
}

export class EventsApi {
  constructor(
    readonly stub: EventsServiceClient,
    private readonly caller: Caller,
  ) {}

  /** Append one event to a topic; `data` is bytes, or a string sent as UTF-8. */
  async publish(topic: string, data: BytesLike, options?: PublishOptions): Promise<Published> {
    const res = await this.caller.unary(this.stub, "publish", publishRequest(topic, data, options), options);
    return published(res);
  }

  /** Append many events (each atomic on its own, in order per topic) in one round trip. */
  async publishMany(items: { topic: string; data: BytesLike; options?: PublishOptions }[], options?: CallOptions): Promise<Published[]> {
    checkOptions(options, [], "events.publishMany");
    const requests = items.map((item, i) => publishRequest(item.topic, item.data, item.options, `events.publishMany item ${i}`));
    const res = await this.caller.unary(this.stub, "batchPublish", BatchPublishRequest.fromPartial({ requests }), options);
    return res.responses.map(published);
  }

  /**
   * Subscribe to topics (exact names or patterns) and iterate over their events:
   *
   *     for await (const event of coord.events.subscribe("orders", { start: "earliest" })) { ... }
   *
   * The iterator reconnects by itself and resumes after the last event received: no gap, no
   * duplicate. `break`, close() or the signal end it quietly; an error that cannot be resumed
   * (a bad request, a missing permission) is thrown by the loop.
   */
  subscribe(topics: string | string[], options: SubscribeOptions = {}): Subscription {
    checkOptions(options, SUBSCRIBE_OPTIONS, "events.subscribe");
    const list = toTextList(topics, "topics");
    const start: Start = options.start === undefined ? "latest" : options.start instanceof Date ? toDate(options.start, "start") : options.start;
    if (start !== "latest" && start !== "earliest" && !(start instanceof Date)) {
      throw new TypeError(`start must be "latest", "earliest" or a Date, got ${JSON.stringify(start)}`);
    }
    let after: Record<string, string> = {};
    if (typeof options.after === "string") {
      if (list.length !== 1) throw new TypeError("after: an id needs exactly one topic; pass {topic: id} instead");
      after = { [list[0] as string]: options.after };
    } else if (options.after !== undefined) {
      after = toTextMap(options.after, "after");
    }
    if (options.heartbeat !== undefined) toUint32(Math.round(options.heartbeat), "heartbeat");
    if (options.onGap !== undefined && typeof options.onGap !== "function") throw new TypeError("onGap must be a function");
    return new Subscription(
      this.stub,
      this.caller,
      list,
      start,
      after,
      options.heartbeat,
      toBool(options.volatile, "volatile"),
      options.onGap,
      options.signal,
    );
  }

  /** Describe one topic: its length, first and last ids, retention and consumer groups. */
  async getTopic(topic: string, options?: CallOptions): Promise<TopicInfo> {
    checkOptions(options, [], "events.getTopic");
    const res = await this.caller.unary(this.stub, "getTopic", GetTopicRequest.fromPartial({ topic: toText(topic, "topic") }), options);
    const t = res.topic;
    if (t === undefined) throw new TypeError("the server sent no topic");
    return {
      name: t.name,
      exists: t.exists,
      length: t.length,
      firstId: t.firstId,
      lastId: t.lastId,
      entriesAdded: t.entriesAdded,
      lastRemovedId: t.lastRemovedId,
      retention: t.retention === undefined ? undefined : { maxLength: t.retention.maxLength, maxAge: msFromDuration(t.retention.maxAge) },
      groups: t.groups.map((g) => ({ ...g })),
    };
  }
}

export type { Subscription, SubscribeOptions, Start };
