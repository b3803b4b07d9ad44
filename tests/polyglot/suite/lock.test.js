'use strict';
// LockService from Node: try-lock, a queued wait handed the lock on release, semaphores, and a Hold
// stream whose lock is freed the moment the stream is cut.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {connect, unary, reader, duration, unique, deadline, waitFor} = require('../lib/coord');

describe('lock', () => {
  let coord;
  before(() => {
    coord = connect();
  });
  after(() => coord.close());

  const exclusive = (name, extra = {}) => ({name, mode: 'LOCK_MODE_EXCLUSIVE', ttl: duration(30_000), ...extra});

  it('grants a try-lock once and reports the holder to the next caller', async () => {
    const name = unique('lock');
    const first = await unary(coord.lock, 'Acquire', exclusive(name, {owner: 'node-a'}));
    assert.equal(first.acquired, true);
    assert.ok(first.grant.lock_token.length > 0);
    assert.match(first.grant.fencing_token, /^[1-9][0-9]*$/);

    const second = await unary(coord.lock, 'Acquire', exclusive(name, {owner: 'node-b'}));
    assert.equal(second.acquired, false);
    assert.equal(second.grant, null);
    assert.deepEqual(
      second.holders.map((h) => [h.owner, h.fencing_token]),
      [['node-a', first.grant.fencing_token]],
    );

    const released = await unary(coord.lock, 'Release', {name, lock_token: first.grant.lock_token});
    assert.equal(released.outcome, 'RELEASE_OUTCOME_RELEASED');
    const again = await unary(coord.lock, 'Release', {name, lock_token: first.grant.lock_token});
    assert.equal(again.outcome, 'RELEASE_OUTCOME_RELEASED'); // idempotent while remembered
  });

  it('hands the lock to a waiting caller as soon as it is released', async () => {
    const name = unique('wait');
    const holder = await unary(coord.lock, 'Acquire', exclusive(name));
    const waiting = unary(coord.lock, 'Acquire', exclusive(name, {wait: duration(10_000)}), {timeoutMs: 15_000});
    // Release only once the waiter is queued (Describe shows it), so the hand-over is what is tested.
    await waitFor(async () => (await unary(coord.lock, 'Describe', {name})).queue_length === 1);
    const started = Date.now();
    await unary(coord.lock, 'Release', {name, lock_token: holder.grant.lock_token});
    const granted = await waiting;
    assert.equal(granted.acquired, true);
    assert.ok(BigInt(granted.grant.fencing_token) > BigInt(holder.grant.fencing_token));
    assert.ok(Date.now() - started < 5_000);
  });

  it('admits at most `limit` SHARED holders (a semaphore)', async () => {
    const name = unique('sem');
    const permit = {name, mode: 'LOCK_MODE_SHARED', limit: 2, ttl: duration(30_000)};
    const a = await unary(coord.lock, 'Acquire', permit);
    const b = await unary(coord.lock, 'Acquire', permit);
    const c = await unary(coord.lock, 'Acquire', permit);
    assert.deepEqual([a.acquired, b.acquired, c.acquired], [true, true, false]);
    const described = await unary(coord.lock, 'Describe', {name});
    assert.equal(described.holder_count, 2);
    assert.equal(described.mode, 'LOCK_MODE_SHARED');
  });

  it('renews a Hold on heartbeat and frees the lock at once when the stream is cut', async () => {
    const name = unique('hold');
    const call = coord.lock.Hold({deadline: deadline(30_000)});
    const next = reader(call);
    call.write({acquire: exclusive(name, {ttl: duration(60_000), owner: 'node-hold'})});
    const acquired = await next();
    assert.equal(acquired.kind, 'acquired');
    call.write({heartbeat: {ttl: duration(60_000)}});
    const renewed = await next();
    assert.equal(renewed.kind, 'renewed');
    assert.equal(renewed.renewed.fencing_token, acquired.acquired.fencing_token);

    const busy = await unary(coord.lock, 'Acquire', exclusive(name));
    assert.equal(busy.acquired, false);

    // Cut the stream: no release message, the lease still has about 60 s to run.
    call.cancel();
    await assert.rejects(next(), (err) => err.code === 1); // CANCELLED
    const started = Date.now();
    const after = await unary(coord.lock, 'Acquire', exclusive(name, {wait: duration(10_000)}), {timeoutMs: 15_000});
    assert.equal(after.acquired, true);
    assert.ok(Date.now() - started < 5_000, 'freed at once, not after the 60 s lease');
    assert.ok(BigInt(after.grant.fencing_token) > BigInt(acquired.acquired.fencing_token));
  });
});
