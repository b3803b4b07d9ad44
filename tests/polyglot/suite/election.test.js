'use strict';
// ElectionService from Node: a Campaign stream elected, renewed and resigned; a second candidate
// queued and elected with a higher term when the first stream is cut; Proclaim fenced by the term;
// and an Observe stream that sees the state, then every change in order, and resumes after a revision.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {unary, reader, duration, unique, deadline} = require('../lib/coord');
const {connectElection} = require('../lib/election');

const bytes = (text) => Buffer.from(text);

describe('election', () => {
  let coord;
  before(() => {
    coord = connectElection();
  });
  after(() => coord.close());

  const campaign = (name, value) => {
    const call = coord.election.Campaign({deadline: deadline(30_000)});
    const next = reader(call);
    call.write({join: {name, value: bytes(value), ttl: duration(60_000)}});
    return {call, next};
  };

  it('elects, queues the next candidate, and hands over when the stream is cut', async () => {
    const name = unique('election');
    const a = campaign(name, 'node-a');
    const elected = await a.next();
    assert.equal(elected.kind, 'elected');
    assert.match(elected.elected.term, /^[1-9][0-9]*$/);
    assert.ok(elected.elected.leader_token.length > 0);
    a.call.write({keep_alive: {}});
    const renewed = await a.next();
    assert.equal(renewed.kind, 'renewed');
    assert.equal(renewed.renewed.term, elected.elected.term);

    const b = campaign(name, 'node-b');
    const queued = await b.next();
    assert.equal(queued.kind, 'queued');
    assert.equal(queued.queued.position, 1);
    assert.equal(queued.queued.leader_term, elected.elected.term);
    const now = await unary(coord.election, 'Leader', {name});
    assert.equal(now.leader.value.toString(), 'node-a');

    // Cut the stream: no resign, the lease still has about 60 s to run.
    a.call.cancel();
    await assert.rejects(a.next(), (err) => err.code === 1); // CANCELLED
    const next = await b.next();
    assert.equal(next.kind, 'elected');
    assert.ok(BigInt(next.elected.term) > BigInt(elected.elected.term));

    // Proclaim is fenced by the term: the old leader's is refused, the new one's accepted.
    const stale = await unary(coord.election, 'Proclaim', {
      name, term: elected.elected.term, leader_token: elected.elected.leader_token, value: bytes('stale'),
    });
    assert.equal(stale.proclaimed, false);
    const fresh = await unary(coord.election, 'Proclaim', {
      name, term: next.elected.term, leader_token: next.elected.leader_token, value: bytes('node-b2'),
    });
    assert.equal(fresh.proclaimed, true);
    assert.equal(fresh.leader.value.toString(), 'node-b2');

    b.call.write({resign: {}});
    const resigned = await b.next();
    assert.equal(resigned.kind, 'resigned');
    assert.equal(resigned.resigned.was_leader, true);
    assert.equal(await b.next(), null);
    const nobody = await unary(coord.election, 'Leader', {name});
    assert.equal(nobody.leader, null);
  });

  it('observes the state, then every change in order, and resumes after a revision', async () => {
    const name = unique('observe');
    const watch = coord.election.Observe({name}, {deadline: deadline(30_000)});
    const next = reader(watch);
    const current = await next();
    assert.equal(current.kind, 'CHANGE_KIND_CURRENT');
    assert.equal(current.leader, null);

    const a = campaign(name, 'node-a');
    const elected = (await a.next()).elected;
    await unary(coord.election, 'Proclaim', {
      name, term: elected.term, leader_token: elected.leader_token, value: bytes('node-a2'),
    });
    a.call.write({resign: {}});
    assert.equal((await a.next()).kind, 'resigned');

    const seen = [await next(), await next(), await next()];
    assert.deepEqual(
      seen.map((c) => c.kind),
      ['CHANGE_KIND_ELECTED', 'CHANGE_KIND_PROCLAIMED', 'CHANGE_KIND_ENDED'],
    );
    assert.equal(seen[0].revision, elected.revision);
    assert.equal(seen[1].leader.value.toString(), 'node-a2');
    assert.equal(seen[2].ended_term, elected.term);
    assert.equal(seen[2].end_reason, 'END_REASON_RESIGNED');
    watch.cancel();

    // Resuming after the election gives exactly the two changes after it.
    const resumed = coord.election.Observe({name, after_revision: seen[0].revision}, {deadline: deadline(30_000)});
    const again = reader(resumed);
    const rest = [await again(), await again()];
    assert.deepEqual(rest.map((c) => c.revision), [seen[1].revision, seen[2].revision]);
    resumed.cancel();
  });
});
