'use strict';
// Run over TLS with an API key allowed only `ratelimit` (COORD_TOKEN_FILE): the key is valid, so
// RateLimitService answers, and every other call is refused with PERMISSION_DENIED. A Node client
// learns which permission it lacks only from the error details: the google.rpc.Status in the
// `grpc-status-details-bin` trailer, whose ErrorInfo names it.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {connect, unary, expectError, duration, unique, grpc} = require('../lib/coord');

describe('a key allowed only ratelimit', () => {
  let coord;
  before(() => {
    coord = connect();
  });
  after(() => coord.close());

  it('is accepted by RateLimitService', async () => {
    const key = unique('allowed');
    const res = await unary(coord.ratelimit, 'Check', {
      descriptors: [{key, rule: {limit: '5', period: duration(60_000)}}],
    });
    assert.equal(res.allowed, true);
  });

  it('gets PERMISSION_DENIED on cache.Get, with reason and permission in the ErrorInfo', async () => {
    const {err, status} = await expectError(unary(coord.cache, 'Get', {key: unique('denied')}));
    assert.equal(err.code, grpc.status.PERMISSION_DENIED);
    assert.ok(status, 'the refusal carries a google.rpc.Status');
    assert.equal(status.code, grpc.status.PERMISSION_DENIED);
    const info = status.details.ErrorInfo;
    assert.equal(info.reason, 'PERMISSION_DENIED');
    assert.equal(info.domain, 'coord');
    assert.equal(info.metadata.permission, 'cache.Get');
  });

  it('is told the permission of the very method it called', async () => {
    const {status} = await expectError(unary(coord.cache, 'Set', {key: unique('denied'), value: Buffer.from('v')}));
    assert.equal(status.details.ErrorInfo.reason, 'PERMISSION_DENIED');
    assert.equal(status.details.ErrorInfo.metadata.permission, 'cache.Set');
  });
});
