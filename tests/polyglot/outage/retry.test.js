'use strict';
// Run against a Coord whose Redis is down: gRPC's own retries, driven only by the shipped service
// config, retry the idempotent Get and never the Increment. grpc-js reports the retries it made in
// the `grpc-previous-rpc-attempts` trailer of the final status.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {connect, unary, expectError, durationMs, grpc} = require('../lib/coord');

function previousAttempts(err) {
  const [value] = err.metadata.get('grpc-previous-rpc-attempts');
  return value === undefined ? 0 : Number(value);
}

describe('retries from the service config', () => {
  let coord;
  before(() => {
    coord = connect();
  });
  after(() => coord.close());

  it('retries an idempotent Get on UNAVAILABLE, then reports the rich error', async () => {
    const {err, status} = await expectError(unary(coord.cache, 'Get', {key: 'k'}, {timeoutMs: 10_000}));
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.ok(previousAttempts(err) >= 1, `Get was attempted ${previousAttempts(err) + 1} time(s)`);
    assert.equal(status.details.ErrorInfo.reason, 'BACKEND_UNAVAILABLE');
    assert.ok(durationMs(status.details.RetryInfo.retry_delay) > 0);
  });

  it('never retries Increment, although the server says a retry is possible', async () => {
    const {err, status} = await expectError(unary(coord.cache, 'Increment', {key: 'n', delta: '1'}));
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.equal(previousAttempts(err), 0);
    assert.ok(status.details.RetryInfo);
  });
});
