'use strict';
// The collection services from Node: maps, lists (with a blocking Pop released by a Push from another
// client), sets and sorted sets used as a leaderboard; versions, TTLs and the rich errors of a call on
// a name that holds another kind of collection.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {connect, unary, expectError, duration, unique, grpc, deadline, reader} = require('../lib/coord');
const {connectCollections, COLLECTION_SERVICE_NAMES} = require('../lib/collections');

const bytes = (text) => Buffer.from(text);
const texts = (values) => values.map((v) => v.toString());
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const expiresInMs = (state) => Number(state.expire_time.seconds) * 1000 + state.expire_time.nanos / 1e6 - Date.now();

// The ErrorInfo of a call that must fail with `code`.
async function errorInfo(promise, code) {
  const {err, status} = await expectError(promise);
  assert.equal(err.code, code, `${err.code} ${err.details}`);
  assert.ok(status, 'the error carries a google.rpc.Status');
  assert.equal(status.details.ErrorInfo.domain, 'coord');
  return status.details.ErrorInfo;
}

describe('collections', () => {
  let coll;
  let coord;
  before(() => {
    coll = connectCollections();
    coord = connect();
  });
  after(() => {
    coll.close();
    coord.close();
  });

  it('are listed by reflection and reported SERVING by health', async () => {
    for (const service of COLLECTION_SERVICE_NAMES) {
      const res = await unary(coord.health, 'Check', {service});
      assert.equal(res.status, 'SERVING', `health of "${service}"`);
    }
    const call = coord.reflection.ServerReflectionInfo({deadline: deadline()});
    const next = reader(call);
    call.write({host: '', list_services: '*'});
    const res = await next();
    call.end();
    const names = res.list_services_response.service.map((s) => s.name);
    for (const service of COLLECTION_SERVICE_NAMES) {
      assert.ok(names.includes(service), `${service} missing from ${names}`);
    }
  });

  describe('MapService', () => {
    it('sets, gets, reads all and removes fields, with versions and a TTL', async () => {
      const name = unique('map');
      const set = await unary(coll.map, 'Set', {
        name,
        fields: [
          {field: 'name', value: bytes('Ada')},
          {field: 'lang', value: bytes('en')},
        ],
        options: {ttl: duration(60_000)},
      });
      assert.equal(set.applied, true);
      assert.equal(set.added, '2');
      assert.equal(set.collection.exists, true);
      assert.equal(set.collection.length, '2');
      assert.match(set.collection.version, /^[1-9][0-9]*$/); // uint64 as a decimal string
      const left = expiresInMs(set.collection);
      assert.ok(left > 50_000 && left <= 61_000, `expires in ${left} ms`);

      const got = await unary(coll.map, 'Get', {name, fields: ['lang', 'missing', 'name']});
      assert.deepEqual(
        got.values.map((v) => [v.field, v.found, v.value.toString()]),
        [
          ['lang', true, 'en'],
          ['missing', false, ''],
          ['name', true, 'Ada'],
        ],
      );
      assert.equal(got.collection.version, set.collection.version);

      const all = await unary(coll.map, 'GetAll', {name});
      assert.deepEqual(
        all.fields.map((f) => [f.field, f.value.toString()]).sort(),
        [
          ['lang', 'en'],
          ['name', 'Ada'],
        ],
      );
      assert.equal(all.next_cursor, '');

      const removed = await unary(coll.map, 'Remove', {name, fields: ['lang', 'missing']});
      assert.equal(removed.removed, '1');
      assert.equal(removed.collection.length, '1');
      assert.ok(BigInt(removed.collection.version) > BigInt(set.collection.version));

      const last = await unary(coll.map, 'Remove', {name, fields: ['name']});
      assert.equal(last.removed, '1');
      assert.equal(last.collection.exists, false, 'a map goes with its last field');
      const length = await unary(coll.map, 'Length', {name});
      assert.equal(length.collection.length, '0');
      assert.equal(length.collection.version, '0');
    });

    it('writes on the expected version only, and keeps the TTL when asked', async () => {
      const name = unique('map-cas');
      const first = await unary(coll.map, 'Set', {
        name,
        fields: [{field: 'a', value: bytes('1')}],
        options: {ttl: duration(60_000)},
      });
      const stale = (BigInt(first.collection.version) + 1n).toString();
      const refused = await unary(coll.map, 'Set', {
        name,
        fields: [{field: 'a', value: bytes('2')}],
        options: {if_version: stale},
      });
      assert.equal(refused.applied, false);
      assert.equal(refused.collection.version, first.collection.version);

      const kept = await unary(coll.map, 'Set', {
        name,
        fields: [{field: 'a', value: bytes('3')}],
        options: {if_version: first.collection.version, ttl: duration(600_000), ttl_policy: 'TTL_POLICY_KEEP'},
      });
      assert.equal(kept.applied, true);
      assert.ok(BigInt(kept.collection.version) > BigInt(first.collection.version));
      assert.deepEqual(kept.collection.expire_time, first.collection.expire_time);
      const got = await unary(coll.map, 'Get', {name, fields: ['a']});
      assert.equal(got.values[0].value.toString(), '3');
    });

    it('increments integer fields beyond a JS number and float fields', async () => {
      const name = unique('map-incr');
      const big = '9007199254740993'; // 2^53 + 1: a JS number would round it
      const first = await unary(coll.map, 'Increment', {name, field: 'visits', delta: big});
      assert.equal(first.value, 'int_value');
      assert.equal(first.int_value, big);
      const second = await unary(coll.map, 'Increment', {name, field: 'visits', delta: '-3'});
      assert.equal(second.int_value, '9007199254740990');

      const score = await unary(coll.map, 'Increment', {name, field: 'score', float_delta: 1.5});
      assert.equal(score.value, 'float_value');
      assert.equal(score.float_value, 1.5);
      const again = await unary(coll.map, 'Increment', {name, field: 'score', float_delta: 0.25});
      assert.equal(again.float_value, 1.75);
      assert.equal(again.collection.length, '2');
    });

    it('refuses to increment a field that holds no number, naming the field', async () => {
      const name = unique('map-text');
      await unary(coll.map, 'Set', {name, fields: [{field: 'who', value: bytes('Ada')}]});
      const notInteger = await errorInfo(
        unary(coll.map, 'Increment', {name, field: 'who', delta: '1'}),
        grpc.status.FAILED_PRECONDITION,
      );
      assert.equal(notInteger.reason, 'VALUE_NOT_INTEGER');
      assert.equal(notInteger.metadata.field, 'who');
      const notNumber = await errorInfo(
        unary(coll.map, 'Increment', {name, field: 'who', float_delta: 1.0}),
        grpc.status.FAILED_PRECONDITION,
      );
      assert.equal(notNumber.reason, 'COLLECTION_VALUE_NOT_NUMBER');
      assert.equal(notNumber.metadata.name, name);
      assert.equal(notNumber.metadata.field, 'who');
    });

    it('names the bad item of a Set in BadRequest', async () => {
      const {err, status} = await expectError(
        unary(coll.map, 'Set', {
          name: unique('map-bad'),
          fields: [
            {field: 'ok', value: bytes('v')},
            {field: '', value: bytes('v')},
          ],
        }),
      );
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
      assert.deepEqual(
        status.details.BadRequest.field_violations.map((v) => v.field),
        ['fields[1].field'],
      );
    });

    it('lives beside a cache key of the same name without touching it', async () => {
      const name = unique('shared');
      await unary(coord.cache, 'Set', {key: name, value: bytes('cached')});
      await unary(coll.map, 'Set', {name, fields: [{field: 'f', value: bytes('mapped')}]});
      const cached = await unary(coord.cache, 'Get', {key: name});
      assert.equal(cached.entry.value.toString(), 'cached');
      const got = await unary(coll.map, 'Get', {name, fields: ['f']});
      assert.equal(got.values[0].value.toString(), 'mapped');
    });
  });

  describe('ListService', () => {
    let other; // a second client, on a connection of its own
    before(() => {
      other = connectCollections();
    });
    after(() => other.close());

    it('pushes to both ends, reads a range and pops from both ends', async () => {
      const name = unique('list');
      const pushed = await unary(coll.list, 'Push', {name, values: ['a', 'b', 'c'].map(bytes)});
      assert.equal(pushed.applied, true);
      assert.equal(pushed.collection.length, '3');
      await unary(coll.list, 'Push', {name, values: ['y', 'z'].map(bytes), end: 'END_FRONT'});

      const range = await unary(coll.list, 'Range', {name, start: '0', stop: '-1'});
      assert.deepEqual(texts(range.values), ['z', 'y', 'a', 'b', 'c']);
      assert.equal(range.has_more, false);
      const middle = await unary(coll.list, 'Range', {name, start: '1', stop: '2'});
      assert.deepEqual(texts(middle.values), ['y', 'a']);

      const front = await unary(coll.list, 'Pop', {name, count: 2});
      assert.deepEqual(texts(front.values), ['z', 'y']);
      assert.equal(front.collection.length, '3');
      const back = await unary(coll.list, 'Pop', {name, end: 'END_BACK'});
      assert.deepEqual(texts(back.values), ['c']);
      const length = await unary(coll.list, 'Length', {name});
      assert.equal(length.collection.length, '2');
    });

    it('caps a list on push, trimming the other end in the same step', async () => {
      const name = unique('list-capped');
      await unary(coll.list, 'Push', {name, values: ['1', '2', '3'].map(bytes)});
      const capped = await unary(coll.list, 'Push', {name, values: ['4', '5'].map(bytes), max_length: '3'});
      assert.equal(capped.trimmed, '2');
      assert.equal(capped.collection.length, '3');
      const range = await unary(coll.list, 'Range', {name, start: '0', stop: '-1'});
      assert.deepEqual(texts(range.values), ['3', '4', '5']);
    });

    it('wakes a blocking Pop on an empty list with a Push from another client', async () => {
      const name = unique('queue');
      let settled = false;
      const popping = unary(coll.list, 'Pop', {name, wait: duration(20_000)}, {timeoutMs: 30_000});
      popping.then(
        () => (settled = true),
        () => (settled = true),
      );
      // Long enough for the Pop to reach the server and wait there; if it were still on its way
      // when the Push lands, it would find the value anyway, so the assertions below still hold.
      await sleep(300);
      if (settled) {
        const early = await popping; // rethrows the error of a Pop that failed at once
        assert.fail(`Pop on an empty list answered without waiting: ${JSON.stringify(early)}`);
      }

      const pushed = await unary(other.list, 'Push', {name, values: [bytes('job-1')]});
      assert.equal(pushed.applied, true);
      const popped = await popping;
      assert.deepEqual(texts(popped.values), ['job-1']);
      assert.equal(popped.applied, true);

      const left = await unary(other.list, 'Length', {name});
      assert.equal(left.collection.length, '0', 'the pushed value went to the waiting Pop');
    });

    it('serves two blocking Pops of two clients one pushed value each', async () => {
      const name = unique('queue-two');
      const both = Promise.all(
        [coll, other].map((client) => unary(client.list, 'Pop', {name, wait: duration(20_000)}, {timeoutMs: 30_000})),
      );
      both.catch(() => {}); // awaited below; a failed Push must not leave it unhandled meanwhile
      await sleep(300);
      await unary(coll.list, 'Push', {name, values: [bytes('first')]});
      await unary(other.list, 'Push', {name, values: [bytes('second')]});
      const values = (await both).map((res) => texts(res.values));
      assert.deepEqual(values.flat().sort(), ['first', 'second'], JSON.stringify(values));
      values.forEach((taken) => assert.equal(taken.length, 1));
    });

    it('returns no values when the wait ends on a list that stayed empty', async () => {
      const name = unique('queue-empty');
      const popped = await unary(coll.list, 'Pop', {name, wait: duration(200)}, {timeoutMs: 10_000});
      assert.deepEqual(popped.values, []);
      assert.equal(popped.collection.exists, false);
    });
  });

  describe('SetService', () => {
    it('adds, tests, lists and pops members', async () => {
      const name = unique('set');
      const added = await unary(coll.set, 'Add', {name, members: ['red', 'green', 'blue', 'red']});
      assert.equal(added.added, '3');
      assert.equal(added.collection.length, '3');
      const again = await unary(coll.set, 'Add', {name, members: ['green']});
      assert.equal(again.added, '0');
      assert.equal(again.collection.version, added.collection.version, 'nothing changed, same version');

      const contains = await unary(coll.set, 'Contains', {name, members: ['blue', 'pink', 'red']});
      assert.deepEqual(contains.contains, [true, false, true]);

      const members = await unary(coll.set, 'Members', {name});
      assert.deepEqual([...members.members].sort(), ['blue', 'green', 'red']);
      assert.equal(members.next_cursor, '');

      const popped = await unary(coll.set, 'Pop', {name, count: 2});
      assert.equal(popped.members.length, 2);
      assert.equal(new Set(popped.members).size, 2);
      for (const m of popped.members) assert.ok(['blue', 'green', 'red'].includes(m), m);
      assert.equal(popped.collection.length, '1');
      const after = await unary(coll.set, 'Contains', {name, members: popped.members});
      assert.deepEqual(after.contains, [false, false]);

      const removed = await unary(coll.set, 'Remove', {name, members: ['blue', 'green', 'red']});
      assert.equal(removed.removed, '1');
      assert.equal(removed.collection.exists, false);
    });
  });

  describe('SortedSetService', () => {
    const board = async () => {
      const name = unique('board');
      const put = await unary(coll.sortedSet, 'Put', {
        name,
        members: [
          {member: 'alice', score: 10},
          {member: 'bob', score: 20},
          {member: 'carol', score: 30},
          {member: 'dave', score: 40},
          {member: 'eve', score: 50},
        ],
      });
      assert.equal(put.added, '5');
      return name;
    };

    it('increments a score and reads the rank and score together', async () => {
      const name = await board();
      const incremented = await unary(coll.sortedSet, 'Increment', {name, member: 'alice', delta: 45});
      assert.equal(incremented.score, 55);
      const ranks = await unary(coll.sortedSet, 'GetRank', {
        name,
        members: ['alice', 'carol', 'nobody'],
        order: 'ORDER_DESCENDING',
      });
      assert.deepEqual(
        ranks.ranks.map((r) => [r.member, r.found, r.rank, r.score]),
        [
          ['alice', true, '0', 55],
          ['carol', true, '3', 30],
          ['nobody', false, '0', 0],
        ],
      );
      const ascending = await unary(coll.sortedSet, 'GetRank', {name, members: ['bob']});
      assert.equal(ascending.ranks[0].rank, '0');
    });

    it('reads the top N and the members around one', async () => {
      const name = await board();
      const top = await unary(coll.sortedSet, 'RangeByRank', {
        name,
        ranks: {start: '0', stop: '2'},
        order: 'ORDER_DESCENDING',
      });
      assert.deepEqual(
        top.members.map((m) => [m.member, m.rank, m.score]),
        [
          ['eve', '0', 50],
          ['dave', '1', 40],
          ['carol', '2', 30],
        ],
      );
      assert.equal(top.found, true);

      const around = await unary(coll.sortedSet, 'RangeByRank', {
        name,
        around: {member: 'carol', before: 1, after: 1},
        order: 'ORDER_DESCENDING',
      });
      assert.equal(around.found, true);
      assert.deepEqual(
        around.members.map((m) => [m.member, m.rank]),
        [
          ['dave', '1'],
          ['carol', '2'],
          ['bob', '3'],
        ],
      );

      const missing = await unary(coll.sortedSet, 'RangeByRank', {
        name,
        around: {member: 'nobody', before: 1, after: 1},
      });
      assert.equal(missing.found, false);
      assert.deepEqual(missing.members, []);
    });

    it('reads by score between inclusive and exclusive bounds, with offset and limit', async () => {
      const name = await board();
      const range = await unary(coll.sortedSet, 'RangeByScore', {
        name,
        min: {score: 20},
        max: {score: 50, exclusive: true},
      });
      assert.deepEqual(
        range.members.map((m) => [m.member, m.score]),
        [
          ['bob', 20],
          ['carol', 30],
          ['dave', 40],
        ],
      );
      assert.equal(range.has_more, false);

      // Above 20, highest first: eve, dave, carol; read one at a time after the first.
      const page = (offset) =>
        unary(coll.sortedSet, 'RangeByScore', {
          name,
          min: {score: 20, exclusive: true},
          order: 'ORDER_DESCENDING',
          offset: String(offset),
          limit: 1,
        });
      const second = await page(1);
      assert.deepEqual(second.members.map((m) => m.member), ['dave']);
      assert.equal(second.has_more, true);
      const last = await page(2);
      assert.deepEqual(last.members.map((m) => m.member), ['carol']);
      assert.equal(last.has_more, false);
    });

    it('puts only higher scores under PUT_CONDITION_IF_HIGHER', async () => {
      const name = await board();
      const put = await unary(coll.sortedSet, 'Put', {
        name,
        members: [
          {member: 'alice', score: 5},
          {member: 'bob', score: 25},
          {member: 'frank', score: 1},
        ],
        condition: 'PUT_CONDITION_IF_HIGHER',
      });
      assert.equal(put.added, '1');
      assert.equal(put.updated, '1');
      const scores = await unary(coll.sortedSet, 'GetScore', {name, members: ['alice', 'bob', 'frank']});
      assert.deepEqual(
        scores.scores.map((s) => [s.member, s.score]),
        [
          ['alice', 10],
          ['bob', 25],
          ['frank', 1],
        ],
      );
    });
  });

  describe('a name of another kind', () => {
    it('is refused with FAILED_PRECONDITION and COLLECTION_WRONG_TYPE, changing nothing', async () => {
      const name = unique('kind');
      const set = await unary(coll.map, 'Set', {name, fields: [{field: 'f', value: bytes('v')}]});
      const calls = [
        ['list', () => unary(coll.list, 'Push', {name, values: [bytes('x')]})],
        ['set', () => unary(coll.set, 'Add', {name, members: ['x']})],
        ['sorted_set', () => unary(coll.sortedSet, 'Put', {name, members: [{member: 'x', score: 1}]})],
      ];
      for (const [expected, call] of calls) {
        const info = await errorInfo(call(), grpc.status.FAILED_PRECONDITION);
        assert.equal(info.reason, 'COLLECTION_WRONG_TYPE');
        assert.deepEqual(info.metadata, {name, expected, actual: 'map'});
      }
      const length = await unary(coll.map, 'Length', {name});
      assert.equal(length.collection.version, set.collection.version);
      assert.equal(length.collection.length, '1');

      const queue = unique('kind-list');
      await unary(coll.list, 'Push', {name: queue, values: [bytes('x')]});
      const info = await errorInfo(unary(coll.map, 'Get', {name: queue, fields: ['f']}), grpc.status.FAILED_PRECONDITION);
      assert.equal(info.reason, 'COLLECTION_WRONG_TYPE');
      assert.deepEqual(info.metadata, {name: queue, expected: 'map', actual: 'list'});
    });
  });
});
