'use strict';
// EventsService from Node: publish, a Subscribe stream cut and resumed from its cursor with no gap
// and no duplicate, and a consumer group fed by credits and settled by acks.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {grpc, connect, unary, reader, duration, unique, deadline, waitFor} = require('../lib/coord');

// Reads frames until `count` events arrived; Progress heartbeats are skipped, a Gap fails the test.
async function takeEvents(next, count) {
  const events = [];
  while (events.length < count) {
    const frame = await next();
    assert.ok(frame, 'stream ended early');
    assert.notEqual(frame.frame, 'gap', `unexpected gap ${JSON.stringify(frame.gap)}`);
    if (frame.frame === 'events') events.push(...frame.events.events);
  }
  return events;
}

describe('events', () => {
  let coord;
  before(() => {
    coord = connect();
  });
  after(() => coord.close());

  const publish = (topic, text) =>
    unary(coord.events, 'Publish', {
      topic,
      data: Buffer.from(text),
      content_type: 'text/plain',
      headers: {source: 'node'},
    });

  it('resumes a cut Subscribe stream right after its cursor', async () => {
    const topic = `orders.${unique('t')}`;
    const ids = [];
    for (const text of ['e1', 'e2', 'e3']) ids.push((await publish(topic, text)).id);
    assert.ok(ids.every((id) => /^\d+-\d+$/.test(id)));

    const first = coord.events.Subscribe({topics: [topic], start: 'START_POSITION_EARLIEST'}, {deadline: deadline(10_000)});
    const next1 = reader(first);
    const opened = await next1();
    assert.equal(opened.frame, 'subscribed');
    assert.deepEqual(opened.subscribed.starts, [{topic, after_id: '0-0'}]);
    const seen = await takeEvents(next1, 2);
    assert.deepEqual(seen.slice(0, 2).map((e) => e.data.toString()), ['e1', 'e2']);
    assert.deepEqual(seen[0].headers, {source: 'node'});
    first.cancel();

    // Resume after the second event: the third comes first, then a live one.
    const cursor = {topic, after_id: ids[1]};
    const second = coord.events.Subscribe(
      {topics: [topic], start: 'START_POSITION_LATEST', cursors: [cursor]},
      {deadline: deadline(10_000)},
    );
    const next2 = reader(second);
    const reopened = await next2();
    assert.deepEqual(reopened.subscribed.starts, [cursor]);
    const [third] = await takeEvents(next2, 1);
    assert.equal(third.id, ids[2]);
    assert.equal(third.data.toString(), 'e3');
    const live = await publish(topic, 'e4');
    const [fourth] = await takeEvents(next2, 1);
    assert.equal(fourth.id, live.id);
    second.cancel();
  });

  it('shares a topic through a consumer group: credits bound delivery, acks settle', async () => {
    const topic = `jobs.${unique('t')}`;
    const group = unique('workers');
    const ids = [];
    for (const text of ['j1', 'j2', 'j3']) ids.push((await publish(topic, text)).id);

    const call = coord.events.Consume({deadline: deadline(10_000)});
    const next = reader(call);
    call.write({
      start: {topic, group, group_start: 'START_POSITION_EARLIEST', ack_timeout: duration(30_000), initial_credits: 2},
    });
    const started = await next();
    assert.equal(started.frame, 'started');
    assert.equal(started.started.group_created, true);

    const firstTwo = await takeEvents(next, 2);
    assert.deepEqual(firstTwo.map((e) => e.id), ids.slice(0, 2));
    assert.deepEqual(firstTwo.map((e) => e.delivery_count), [1, 1]);
    call.write({ack: {ids: firstTwo.map((e) => e.id)}});
    // Two credits, two deliveries: the third waits for more credit.
    await waitFor(async () => (await groupInfo(topic, group)).pending === '0');
    assert.equal((await groupInfo(topic, group)).last_delivered_id, ids[1]);

    call.write({credit: {count: 1}});
    const [last] = await takeEvents(next, 1);
    assert.equal(last.id, ids[2]);
    call.write({ack: {ids: [last.id]}});
    await waitFor(async () => {
      const info = await groupInfo(topic, group);
      return info.pending === '0' && info.last_delivered_id === ids[2];
    });
    // A half-close ends the stream at once, with OK, once the acks sent before it are applied.
    const ended = new Promise((resolve, reject) => {
      call.on('status', resolve);
      call.on('error', reject);
    });
    call.end();
    assert.equal((await ended).code, grpc.status.OK);
  });

  async function groupInfo(topic, group) {
    const {topic: info} = await unary(coord.events, 'GetTopic', {topic});
    const found = info.groups.find((g) => g.name === group);
    assert.ok(found, `group ${group} missing`);
    return found;
  }
});
