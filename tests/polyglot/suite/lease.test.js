'use strict';
// Fill leases from Node: GetOrLease hands one caller the lease, another client's GetOrLease waits on
// the server and gets the value once the holder Sets it with the lease's token.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {connect, unary, duration, unique} = require('../lib/coord');

describe('cache fill leases', () => {
  let first;
  let second;
  before(() => {
    first = connect();
    second = connect(); // another client: its own channel
  });
  after(() => {
    first.close();
    second.close();
  });

  it('hands the lease to one caller; a waiting caller gets the value it Sets', async () => {
    const key = unique('lease');
    const holder = await unary(first.cache, 'GetOrLease', {key, lease_ttl: duration(30_000)});
    assert.equal(holder.entry.found, false);
    assert.ok(holder.lease_token.length > 0, 'the first miss takes the lease');
    assert.ok(Number(holder.lease_expire_time.seconds) * 1000 > Date.now());

    let settled = false;
    const waiting = unary(
      second.cache,
      'GetOrLease',
      {key, lease_ttl: duration(30_000), wait: duration(30_000)},
      {timeoutMs: 60_000},
    ).finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(settled, false, 'the second caller waits while the lease is held');

    const set = await unary(first.cache, 'Set', {
      key,
      value: Buffer.from('computed once'),
      ttl: duration(60_000),
      lease_token: holder.lease_token,
    });
    assert.equal(set.outcome, 'WRITE_OUTCOME_STORED');
    const got = await waiting;
    assert.equal(got.entry.found, true);
    assert.deepEqual(got.entry.value, Buffer.from('computed once'));
    assert.equal(got.entry.version, set.version);
    assert.equal(got.lease_token, '');

    // The fill ended the lease: its token stores nothing any more.
    const again = await unary(first.cache, 'Set', {
      key,
      value: Buffer.from('twice'),
      lease_token: holder.lease_token,
    });
    assert.equal(again.outcome, 'WRITE_OUTCOME_LEASE_LOST');
  });

  it('passes an unfilled lease to the waiting caller when it expires', async () => {
    const key = unique('lease');
    const holder = await unary(first.cache, 'GetOrLease', {key, lease_ttl: duration(200)});
    assert.ok(holder.lease_token.length > 0);
    const next = await unary(
      second.cache,
      'GetOrLease',
      {key, lease_ttl: duration(30_000), wait: duration(30_000)},
      {timeoutMs: 60_000},
    );
    assert.equal(next.entry.found, false);
    assert.ok(next.lease_token.length > 0 && next.lease_token !== holder.lease_token);
    const late = await unary(first.cache, 'Set', {
      key,
      value: Buffer.from('late'),
      lease_token: holder.lease_token,
    });
    assert.equal(late.outcome, 'WRITE_OUTCOME_LEASE_LOST');
  });

  it('refuses a GetOrLease without a lease_ttl, naming the field', async () => {
    await assert.rejects(unary(first.cache, 'GetOrLease', {key: unique('lease')}), (err) => {
      assert.equal(err.code, 3); // INVALID_ARGUMENT
      assert.match(err.details, /^lease_ttl:/);
      return true;
    });
  });
});
