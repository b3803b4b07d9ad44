'use strict';
// WatchInvalidations from Node: what a near cache in any language reads. `ready` comes first
// (sequence 1), then one invalidation per change to a watched key, here a Set by another client,
// numbered on without holes; a key outside the watched prefixes sends nothing.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {connect, unary, reader, duration, unique, deadline} = require('../lib/coord');

describe('near cache invalidations', () => {
  let watcher;
  let writer;
  before(() => {
    watcher = connect();
    writer = connect(); // another client: its own channel
  });
  after(() => {
    watcher.close();
    writer.close();
  });

  it('streams ready, then an invalidation for a Set made by another client', async () => {
    const prefix = `${unique('near')}:`;
    const call = watcher.cache.WatchInvalidations({prefixes: [prefix]}, {deadline: deadline(10_000)});
    const next = reader(call);
    try {
      const ready = await next();
      assert.equal(ready.kind, 'ready');
      assert.equal(ready.sequence, '1'); // uint64 as a decimal string

      await unary(writer.cache, 'Set', {key: unique('elsewhere'), value: Buffer.from('x')}); // not watched
      const key = `${prefix}user`;
      const set = await unary(writer.cache, 'Set', {key, value: Buffer.from('v1'), ttl: duration(60_000)});
      assert.equal(set.outcome, 'WRITE_OUTCOME_STORED');

      const changed = await next();
      assert.equal(changed.kind, 'invalidation');
      assert.equal(changed.sequence, '2');
      assert.equal(changed.invalidation.key, key);
      assert.equal(changed.invalidation.version, set.version);

      await unary(writer.cache, 'Delete', {keys: [key]});
      const deleted = await next();
      assert.equal(deleted.sequence, '3');
      assert.deepEqual([deleted.invalidation.key, deleted.invalidation.version], [key, '0']);
    } finally {
      call.cancel();
    }
  });

  it('refuses a request that watches nothing, naming the field', async () => {
    const call = watcher.cache.WatchInvalidations({}, {deadline: deadline(5_000)});
    const next = reader(call);
    await assert.rejects(next(), (err) => {
      assert.equal(err.code, 3); // INVALID_ARGUMENT
      assert.match(err.details, /^prefixes: /);
      return true;
    });
  });
});
