'use strict';
// RateLimitService from Node: several descriptors decided in one atomic step, a denial as data.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {connect, unary, reader, deadline, expectError, duration, durationMs, unique, grpc} = require('../lib/coord');

describe('ratelimit', () => {
  let coord;
  before(() => {
    coord = connect();
  });
  after(() => coord.close());

  it('decides a multi-descriptor Check all-or-nothing and denies with retry_after', async () => {
    const user = unique('user');
    const request = {
      scope: user,
      descriptors: [
        {key: `${user}:burst`, rule: {algorithm: 'ALGORITHM_FIXED_WINDOW', limit: '2', period: duration(60_000), name: 'burst'}},
        {key: `${user}:daily`, rule: {algorithm: 'ALGORITHM_TOKEN_BUCKET', limit: '5', period: duration(86_400_000), name: 'daily'}},
      ],
    };
    const first = await unary(coord.ratelimit, 'Check', request);
    const second = await unary(coord.ratelimit, 'Check', request);
    assert.equal(first.allowed, true);
    assert.equal(second.allowed, true);
    assert.deepEqual(second.statuses.map((s) => [s.name, s.remaining]), [['burst', '0'], ['daily', '3']]);
    assert.match(second.ratelimit_header, /^"burst";r=0;t=\d+, "daily";r=3;t=\d+$/);

    const denied = await unary(coord.ratelimit, 'Check', request);
    assert.equal(denied.allowed, false);
    assert.ok(durationMs(denied.retry_after) > 0 && durationMs(denied.retry_after) <= 60_000);
    // All-or-nothing: the denial by "burst" consumed nothing from "daily" either.
    assert.deepEqual(
      denied.statuses.map((s) => [s.name, s.allowed, s.consumed, s.remaining]),
      [
        ['burst', false, false, '0'],
        ['daily', true, false, '3'],
      ],
    );
  });

  it('lets independent descriptors consume on their own', async () => {
    const key = unique('ind');
    const request = {
      mode: 'MODE_INDEPENDENT',
      descriptors: [
        {key: `${key}:a`, rule: {limit: '1', period: duration(60_000)}},
        {key: `${key}:b`, rule: {limit: '3', period: duration(60_000)}},
      ],
    };
    await unary(coord.ratelimit, 'Check', request);
    const second = await unary(coord.ratelimit, 'Check', request);
    assert.equal(second.allowed, false);
    assert.deepEqual(second.statuses.map((s) => s.consumed), [false, true]);
  });

  it('refuses descriptors of different scopes in one atomic Check, with the reason', async () => {
    const key = unique('scope');
    const {err, status} = await expectError(
      unary(coord.ratelimit, 'Check', {
        descriptors: [
          {key: `${key}:a`, rule: {limit: '1', period: duration(1000)}},
          {key: `${key}:b`, rule: {limit: '1', period: duration(1000)}},
        ],
      }),
    );
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(status.details.ErrorInfo.reason, 'RATELIMIT_SCOPE_REQUIRED');
    assert.equal(status.details.ErrorInfo.domain, 'coord');
  });

  it('decides batches on one CheckBatchStream, each answered by its id, a refused batch alone', async () => {
    const key = unique('bstream');
    const call = coord.ratelimit.CheckBatchStream({deadline: deadline(10_000)});
    const accepted = new Promise((resolve) => call.on('metadata', resolve));
    const next = reader(call);
    await accepted; // the server accepts the stream (initial metadata) before any batch is sent
    const one = (k) => ({descriptors: [{key: k, rule: {limit: '2', period: duration(60_000)}}]});
    call.write({batch_id: '1', checks: [one(`${key}:a`), one(`${key}:a`), one(`${key}:a`)], timeout: duration(2_000)});
    call.write({batch_id: '2', checks: []});
    call.write({batch_id: '3', checks: [one(`${key}:b`), one('')]});
    call.end();
    const answers = {};
    for (let message = await next(); message; message = await next()) answers[message.batch_id] = message;
    assert.deepEqual(Object.keys(answers).sort(), ['1', '2', '3']);
    assert.deepEqual(answers['1'].results.map((r) => r.check.allowed), [true, true, false]);
    assert.equal(answers['1'].error, null);
    assert.equal(answers['2'].error.code, grpc.status.INVALID_ARGUMENT); // no checks: refused, the stream went on
    assert.deepEqual(answers['2'].results, []);
    assert.deepEqual(answers['3'].results.map((r) => r.result), ['check', 'error']);
    assert.equal(answers['3'].results[0].check.allowed, true);
    assert.equal(answers['3'].results[1].error.code, grpc.status.INVALID_ARGUMENT);
  });
});
