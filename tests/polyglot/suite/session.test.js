'use strict';
// SessionService from Node: create, validate, rotate (with the old token's grace), revoke.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const {connect, unary, expectError, duration, unique, grpc} = require('../lib/coord');

describe('session', () => {
  let coord;
  before(() => {
    coord = connect();
  });
  after(() => coord.close());

  it('creates, validates, rotates and revokes a session', async () => {
    const subject = unique('user');
    const created = await unary(coord.session, 'Create', {
      subject,
      attributes: {role: Buffer.from('admin')},
      idle_timeout: duration(600_000),
      client: {label: 'node test'},
    });
    assert.match(created.token, /^cs1_/);
    const id = created.session.session_id;
    assert.equal(created.session.subject, subject);

    const valid = await unary(coord.session, 'Validate', {token: created.token, attribute_names: ['role']});
    assert.equal(valid.result, 'session');
    assert.equal(valid.session.session_id, id);
    assert.deepEqual(valid.session.attributes.role, Buffer.from('admin'));

    const rotated = await unary(coord.session, 'Rotate', {token: created.token, grace: duration(30_000)});
    assert.equal(rotated.result, 'rotated');
    const fresh = rotated.rotated.token;
    assert.notEqual(fresh, created.token);
    assert.equal(rotated.rotated.session.session_id, id);
    // The old token still works within its grace period; rotating it again is refused.
    assert.equal((await unary(coord.session, 'Validate', {token: created.token})).result, 'session');
    const twice = await unary(coord.session, 'Rotate', {token: created.token});
    assert.equal(twice.invalid.reason, 'INVALID_REASON_SUPERSEDED');

    const listed = await unary(coord.session, 'ListSessions', {subject});
    assert.deepEqual(listed.sessions.map((s) => s.session_id), [id]);

    const revoked = await unary(coord.session, 'Revoke', {token: fresh});
    assert.equal(revoked.revoked, true);
    for (const token of [fresh, created.token]) {
      const after = await unary(coord.session, 'Validate', {token});
      assert.equal(after.result, 'invalid');
      assert.equal(after.invalid.reason, 'INVALID_REASON_REVOKED');
    }
    assert.equal((await unary(coord.session, 'Revoke', {session_id: id})).revoked, false); // idempotent
  });

  it('answers an unknown but well-formed token with a reason, a malformed one with an error', async () => {
    const unknown = await unary(coord.session, 'Validate', {token: `cs1_000${'A'.repeat(65)}`});
    assert.equal(unknown.invalid.reason, 'INVALID_REASON_UNKNOWN');
    const {err, status} = await expectError(unary(coord.session, 'Validate', {token: 'not-a-token'}));
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(status.details.ErrorInfo.reason, 'SESSION_TOKEN_MALFORMED');
    assert.ok(!JSON.stringify(status).includes('not-a-token'), 'the token is never echoed');
  });
});
