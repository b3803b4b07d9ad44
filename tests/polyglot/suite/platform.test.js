'use strict';
// What any gRPC client gets besides the services: standard health checks, reflection, and the
// recommended service config loaded into the channel.

const {describe, it, before, after} = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const {
  connect,
  unary,
  reader,
  expectError,
  grpc,
  services,
  SERVICE_FILES,
  SERVICE_CONFIG_PATH,
  deadline,
} = require('../lib/coord');
const {COLLECTION_FILES, COLLECTION_SERVICE_NAMES, collectionServices} = require('../lib/collections');

const COORD_SERVICES = [
  'coord.cache.v1.CacheService',
  ...COLLECTION_SERVICE_NAMES,
  'coord.events.v1.EventsService',
  'coord.lock.v1.LockService',
  'coord.ratelimit.v1.RateLimitService',
  'coord.session.v1.SessionService',
];

// Methods whose second attempt could do or report something different from the first: a
// service config must never give them a retryPolicy.
const NEVER_RETRIED = {
  'coord.cache.v1.CacheService': ['Set', 'BatchSet', 'Delete', 'Increment'],
  'coord.lock.v1.LockService': ['Acquire', 'Hold', 'Extend'],
  'coord.ratelimit.v1.RateLimitService': ['Check'],
  'coord.session.v1.SessionService': ['Create', 'Update', 'Rotate', 'Revoke', 'RevokeAll'],
  'coord.events.v1.EventsService': ['Publish', 'BatchPublish', 'Consume'],
  'coord.collections.v1.MapService': ['Set', 'Remove', 'Increment', 'Delete'],
  'coord.collections.v1.ListService': ['Push', 'Pop', 'Remove', 'Trim', 'Delete'],
  'coord.collections.v1.SetService': ['Add', 'Remove', 'Pop', 'Delete'],
  'coord.collections.v1.SortedSetService': ['Put', 'Increment', 'Remove', 'Delete'],
};

describe('platform', () => {
  let coord;
  before(() => {
    coord = connect();
  });
  after(() => coord.close());

  it('reports SERVING for the server and for every Coord service', async () => {
    for (const service of ['', ...COORD_SERVICES]) {
      const res = await unary(coord.health, 'Check', {service});
      assert.equal(res.status, 'SERVING', `health of "${service}"`);
    }
    const {err} = await expectError(unary(coord.health, 'Check', {service: 'no.such.Service'}));
    assert.equal(err.code, grpc.status.NOT_FOUND);
  });

  it('lists every Coord service through reflection', async () => {
    const call = coord.reflection.ServerReflectionInfo({deadline: deadline()});
    const next = reader(call);
    call.write({host: '', list_services: '*'});
    const res = await next();
    call.end();
    const names = res.list_services_response.service.map((s) => s.name);
    for (const service of [...COORD_SERVICES, 'grpc.health.v1.Health']) {
      assert.ok(names.includes(service), `${service} missing from ${names}`);
    }
    assert.equal(await next(), null);
  });

  it('creates its channel with the shipped service_config.json, unchanged', () => {
    const shipped = fs.readFileSync(SERVICE_CONFIG_PATH, 'utf8');
    assert.equal(coord.options['grpc.service_config'], shipped);
    assert.equal(coord.options['grpc.enable_retries'], 1);
  });

  it('names only real methods in the service config and retries no non-idempotent one', () => {
    const config = JSON.parse(fs.readFileSync(SERVICE_CONFIG_PATH, 'utf8'));
    const known = {};
    for (const Service of [...Object.values(services), ...Object.values(collectionServices)]) {
      for (const def of Object.values(Service.service)) {
        const [, service, method] = def.path.split('/');
        (known[service] ||= new Set()).add(method);
      }
    }
    assert.deepEqual(Object.keys(known).filter((s) => s.startsWith('coord.')).sort(), COORD_SERVICES);
    const files = Object.keys(SERVICE_FILES).length + Object.keys(COLLECTION_FILES).length;
    assert.equal(files, COORD_SERVICES.length);
    for (const methodConfig of config.methodConfig) {
      assert.ok(methodConfig.timeout, `every methodConfig sets a timeout: ${JSON.stringify(methodConfig.name)}`);
      for (const {service, method} of methodConfig.name) {
        assert.ok(known[service], `unknown service ${service}`);
        if (method) assert.ok(known[service].has(method), `unknown method ${service}/${method}`);
        if (!methodConfig.retryPolicy) continue;
        const forbidden = method ? [method] : [...known[service]];
        for (const m of forbidden) {
          assert.ok(!(NEVER_RETRIED[service] || []).includes(m), `${service}/${m} must never be retried`);
        }
        assert.deepEqual(methodConfig.retryPolicy.retryableStatusCodes, ['UNAVAILABLE']);
      }
    }
  });
});
