'use strict';
// CacheService from Node: versions, conditional writes, batch order, counters, rich errors.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {connect, unary, expectError, duration, unique, grpc} = require('../lib/coord');

describe('cache', () => {
  let coord;
  before(() => {
    coord = connect();
  });
  after(() => coord.close());

  it('sets and gets a value with its version and expiry', async () => {
    const key = unique('cache');
    const set = await unary(coord.cache, 'Set', {
      key,
      value: Buffer.from('hello'),
      ttl: duration(60_000),
    });
    assert.equal(set.outcome, 'WRITE_OUTCOME_STORED');
    assert.match(set.version, /^[1-9][0-9]*$/); // uint64 as a decimal string
    const got = await unary(coord.cache, 'Get', {key});
    assert.equal(got.entry.found, true);
    assert.equal(got.entry.key, key);
    assert.deepEqual(got.entry.value, Buffer.from('hello'));
    assert.equal(got.entry.version, set.version);
    const left = Number(got.entry.expire_time.seconds) * 1000 - Date.now();
    assert.ok(left > 50_000 && left <= 61_000, `expires in ${left} ms`);
  });

  it('reports a miss as data, not an error', async () => {
    const got = await unary(coord.cache, 'Get', {key: unique('missing')});
    assert.equal(got.entry.found, false);
    assert.equal(got.entry.version, '0');
  });

  it('refuses if_absent on an existing key and if_version on a stale version', async () => {
    const key = unique('cas');
    const first = await unary(coord.cache, 'Set', {key, value: Buffer.from('a'), if_absent: {}});
    assert.equal(first.outcome, 'WRITE_OUTCOME_STORED');

    const again = await unary(coord.cache, 'Set', {key, value: Buffer.from('b'), if_absent: {}});
    assert.equal(again.outcome, 'WRITE_OUTCOME_ALREADY_EXISTS');
    assert.equal(again.version, first.version);

    const stale = (BigInt(first.version) + 1n).toString();
    const mismatch = await unary(coord.cache, 'Set', {key, value: Buffer.from('c'), if_version: stale});
    assert.equal(mismatch.outcome, 'WRITE_OUTCOME_VERSION_MISMATCH');
    assert.equal(mismatch.version, first.version);

    const swapped = await unary(coord.cache, 'Set', {key, value: Buffer.from('d'), if_version: first.version});
    assert.equal(swapped.outcome, 'WRITE_OUTCOME_STORED');
    assert.ok(BigInt(swapped.version) > BigInt(first.version));
    const got = await unary(coord.cache, 'Get', {key});
    assert.deepEqual(got.entry.value, Buffer.from('d'));

    const absent = await unary(coord.cache, 'Set', {key: unique('none'), value: Buffer.from('x'), if_present: {}});
    assert.equal(absent.outcome, 'WRITE_OUTCOME_NOT_FOUND');
  });

  it('answers BatchGet in request order, hits and misses alike', async () => {
    const a = unique('a');
    const b = unique('b');
    const missing = unique('missing');
    await unary(coord.cache, 'BatchSet', {
      requests: [
        {key: a, value: Buffer.from('A')},
        {key: b, value: Buffer.from('B')},
      ],
    });
    const {entries} = await unary(coord.cache, 'BatchGet', {keys: [b, missing, a, b]});
    assert.deepEqual(
      entries.map((e) => [e.key, e.found, e.value.toString()]),
      [
        [b, true, 'B'],
        [missing, false, ''],
        [a, true, 'A'],
        [b, true, 'B'],
      ],
    );
  });

  it('increments a 64-bit counter beyond the precision of a JS number', async () => {
    const key = unique('counter');
    const big = '9007199254740993'; // 2^53 + 1: a JS number would round it
    const first = await unary(coord.cache, 'Increment', {key, delta: big});
    assert.equal(first.value, big);
    assert.equal(first.created, true);
    const second = await unary(coord.cache, 'Increment', {key, delta: '-3'});
    assert.equal(second.value, '9007199254740990');
    assert.equal(second.created, false);
  });

  it('deletes only on the expected version', async () => {
    const key = unique('del');
    const set = await unary(coord.cache, 'Set', {key, value: Buffer.from('v')});
    const wrong = await unary(coord.cache, 'Delete', {keys: [key], if_version: (BigInt(set.version) + 7n).toString()});
    assert.equal(wrong.deleted_count, 0);
    assert.equal(wrong.results[0].outcome, 'DELETE_OUTCOME_VERSION_MISMATCH');
    const right = await unary(coord.cache, 'Delete', {keys: [key], if_version: set.version});
    assert.equal(right.deleted_count, 1);
    assert.equal(right.results[0].outcome, 'DELETE_OUTCOME_DELETED');
  });

  it('decodes a rich INVALID_ARGUMENT: ErrorInfo reason and domain, BadRequest field', async () => {
    const {err, status} = await expectError(unary(coord.cache, 'Get', {key: ''}));
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(status.details.ErrorInfo.reason, 'INVALID_FIELD');
    assert.equal(status.details.ErrorInfo.domain, 'coord');
    assert.deepEqual(
      status.details.BadRequest.field_violations.map((v) => v.field),
      ['key'],
    );
  });

  it('names the limit in ErrorInfo metadata for a key that is too long', async () => {
    const {err, status} = await expectError(unary(coord.cache, 'Get', {key: 'k'.repeat(5000)}));
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    const info = status.details.ErrorInfo;
    assert.equal(info.reason, 'KEY_TOO_LONG');
    assert.equal(info.metadata.field, 'key');
    assert.equal(info.metadata.actual, '5000');
    assert.ok(Number(info.metadata.limit) < 5000);
  });

  it('names the item of a batch that fails validation', async () => {
    const {status} = await expectError(
      unary(coord.cache, 'BatchSet', {
        requests: [
          {key: unique('ok'), value: Buffer.from('v')},
          {key: unique('bad'), value: Buffer.from('v'), ttl: duration(40 * 86_400_000)},
        ],
      }),
    );
    assert.equal(status.details.ErrorInfo.reason, 'TTL_OUT_OF_RANGE');
    assert.equal(status.details.ErrorInfo.metadata.max, '2592000000ms');
    assert.match(status.details.BadRequest.field_violations[0].field, /^requests\[1\]\.ttl$/);
  });

  it('invalidates a key prefix and refuses one without the delimiter', async () => {
    const ns = `${unique('ns')}:`;
    for (const key of [`${ns}a`, `${ns}b:c`, `${ns}0:a`]) {
      const set = await unary(coord.cache, 'Set', {key, value: Buffer.from('v'), ttl: duration(60_000)});
      assert.equal(set.outcome, 'WRITE_OUTCOME_STORED');
    }
    await unary(coord.cache, 'InvalidatePrefix', {prefix: `${ns}b:`});
    const read = async (key) => (await unary(coord.cache, 'Get', {key})).entry.found;
    assert.deepEqual([await read(`${ns}a`), await read(`${ns}b:c`), await read(`${ns}0:a`)], [true, false, true]);
    await unary(coord.cache, 'InvalidatePrefix', {prefix: ns});
    assert.deepEqual([await read(`${ns}a`), await read(`${ns}0:a`)], [false, false]);

    const {err, status} = await expectError(unary(coord.cache, 'InvalidatePrefix', {prefix: ns.slice(0, -1)}));
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(status.details.ErrorInfo.reason, 'INVALID_FIELD');
    assert.deepEqual(status.details.BadRequest.field_violations.map((v) => v.field), ['prefix']);
  });
});
