'use strict';
// What every test file of the Node suite shares: the .proto files loaded at run time (no generated
// code), one channel per file configured with Coord's recommended service config, promise helpers for
// unary and streaming calls, and a decoder for the rich error details of `grpc-status-details-bin`.
//
// Nothing here comes from Coord's Python code: only the .proto contract under protos/ and the
// language-neutral service_config.json.
//
// The environment says where and how to connect, with the variables coordctl reads: COORD_TARGET
// (host:port), COORD_TLS_CA (a PEM file: TLS, the server checked against that CA) and
// COORD_TOKEN_FILE (a file holding an API key or a JWT, sent as `authorization: Bearer <token>`).
// So the same test files run against a plaintext server and against one with TLS and authentication.

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const REPO = path.resolve(__dirname, '..', '..', '..');
const PROTOS = path.join(REPO, 'protos');
const VENDORED = path.join(__dirname, '..', 'protos');
const SERVICE_CONFIG_PATH = path.join(REPO, 'client', 'coord_client', 'service_config.json');

// int64/uint64 arrive as decimal strings (a JS number loses precision above 2^53), enums as their
// names, unset scalars as their defaults, and each oneof gets a virtual field naming the member set.
const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTOS, VENDORED],
};

const SERVICE_FILES = {
  cache: 'coord/cache/v1/cache.proto',
  lock: 'coord/lock/v1/lock.proto',
  ratelimit: 'coord/ratelimit/v1/ratelimit.proto',
  session: 'coord/session/v1/session.proto',
  events: 'coord/events/v1/events.proto',
};

const definition = protoLoader.loadSync(
  [
    ...Object.values(SERVICE_FILES),
    'grpc/health/v1/health.proto',
    'grpc/reflection/v1alpha/reflection.proto',
  ],
  LOADER_OPTIONS,
);
const loaded = grpc.loadPackageDefinition(definition);

const services = {
  cache: loaded.coord.cache.v1.CacheService,
  lock: loaded.coord.lock.v1.LockService,
  ratelimit: loaded.coord.ratelimit.v1.RateLimitService,
  session: loaded.coord.session.v1.SessionService,
  events: loaded.coord.events.v1.EventsService,
  health: loaded.grpc.health.v1.Health,
  reflection: loaded.grpc.reflection.v1alpha.ServerReflection,
};

// The recommended service config, byte for byte as shipped for every language.
const SERVICE_CONFIG_TEXT = fs.readFileSync(SERVICE_CONFIG_PATH, 'utf8');

function channelOptions() {
  return {
    'grpc.service_config': SERVICE_CONFIG_TEXT,
    'grpc.service_config_disable_resolution': 1,
    'grpc.enable_retries': 1,
    'grpc.max_receive_message_length': 64 << 20,
    'grpc.max_send_message_length': 64 << 20,
  };
}

function target(variable = 'COORD_TARGET') {
  const value = process.env[variable];
  if (!value) {
    throw new Error(`set ${variable} to the host:port of a running Coord server`);
  }
  return value;
}

// credentials() -> the channel credentials the environment asks for: plaintext without COORD_TLS_CA;
// TLS with it; and with COORD_TOKEN_FILE as well, call credentials that put the bearer token on every
// call, unary and streaming alike. grpc-js sends call credentials only over TLS, so a token without
// a CA is refused here, with a message, rather than sent in clear.
function credentials() {
  const ca = process.env.COORD_TLS_CA;
  const tokenFile = process.env.COORD_TOKEN_FILE;
  if (!ca) {
    if (tokenFile) throw new Error('COORD_TOKEN_FILE needs COORD_TLS_CA: a token is never sent in clear');
    return grpc.credentials.createInsecure();
  }
  const tls = grpc.credentials.createSsl(fs.readFileSync(ca));
  if (!tokenFile) return tls;
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  const bearer = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    callback(null, metadata);
  });
  return grpc.credentials.combineChannelCredentials(tls, bearer);
}

// connect() opens one channel and returns a stub per service on it; close() ends the channel, which
// a test file must do so that its process can exit.
function connect(variable = 'COORD_TARGET') {
  const address = target(variable);
  const options = channelOptions();
  const creds = credentials();
  const channel = new grpc.Channel(address, creds, options);
  const stubs = {};
  for (const [name, Service] of Object.entries(services)) {
    stubs[name] = new Service(address, creds, {channelOverride: channel});
  }
  return {...stubs, channel, options, close: () => channel.close()};
}

function deadline(ms = 5000) {
  return new Date(Date.now() + ms);
}

// unary(stub, 'Get', {key: 'k'}) resolves with the response or rejects with the grpc-js error
// (`code`, `details`, `metadata`).
function unary(stub, method, request, {timeoutMs = 5000, metadata = new grpc.Metadata()} = {}) {
  return new Promise((resolve, reject) => {
    stub[method](request, metadata, {deadline: deadline(timeoutMs)}, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

// reader(call) returns next(), which resolves with the stream's next message, or null when it ended.
// A stream error rejects the pending and every later next().
function reader(call) {
  const queue = [];
  const waiting = [];
  let ended = false;
  let failure = null;
  const settle = () => {
    while (waiting.length && (queue.length || ended || failure)) {
      const {resolve, reject} = waiting.shift();
      if (queue.length) resolve(queue.shift());
      else if (failure) reject(failure);
      else resolve(null);
    }
  };
  call.on('data', (message) => {
    queue.push(message);
    settle();
  });
  call.on('end', () => {
    ended = true;
    settle();
  });
  call.on('error', (err) => {
    failure = err;
    settle();
  });
  return () =>
    new Promise((resolve, reject) => {
      waiting.push({resolve, reject});
      settle();
    });
}

// The google.rpc types, from the copies of googleapis' status.proto and error_details.proto that the
// npm package ships (client/node/protos; there is no schema registry to pull them from).
const RPC_PROTOS = path.join(REPO, 'client', 'node', 'protos');
const rpcRoot = new protobuf.Root();
rpcRoot.resolvePath = (_origin, target) => {
  const vendored = path.join(RPC_PROTOS, target);
  return fs.existsSync(vendored) ? vendored : target;
};
rpcRoot.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], {keepCase: true});
const Status = rpcRoot.lookupType('google.rpc.Status');
const TO_OBJECT = {longs: String, enums: String, defaults: true, arrays: true, objects: true};

// richStatus(err) decodes the google.rpc.Status a Coord error carries in its trailer
// `grpc-status-details-bin`: {code, message, details: {ErrorInfo: {...}, BadRequest: {...}, ...}}.
function richStatus(err) {
  const [raw] = err.metadata ? err.metadata.get('grpc-status-details-bin') : [];
  if (!raw) {
    throw new Error(`error has no grpc-status-details-bin trailer: ${err.code} ${err.details}`);
  }
  const status = Status.decode(raw);
  const details = {};
  for (const any of status.details) {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    const Type = rpcRoot.lookupType(typeName);
    details[typeName.replace(/^google\.rpc\./, '')] = Type.toObject(Type.decode(any.value), TO_OBJECT);
  }
  return {code: status.code, message: status.message, details};
}

// expectError(promise) resolves with {err, status} for a call that must fail; `status` is the
// decoded google.rpc.Status, or null when the error carries none (as gRPC's own errors do).
async function expectError(promise) {
  try {
    await promise;
  } catch (err) {
    const carried = err.metadata && err.metadata.get('grpc-status-details-bin').length > 0;
    return {err, status: carried ? richStatus(err) : null};
  }
  throw new Error('the call succeeded but was expected to fail');
}

function duration(ms) {
  return {seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6};
}

function durationMs(d) {
  return d ? Number(d.seconds) * 1000 + d.nanos / 1e6 : 0;
}

// waitFor(check) polls an async predicate every 10 ms until it holds, for at most `timeoutMs`.
async function waitFor(check, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// unique('cache') -> 'node-cache-1f3a…': names that never collide with another run or test.
function unique(prefix) {
  return `node-${prefix}-${crypto.randomBytes(6).toString('hex')}`;
}

module.exports = {
  grpc,
  services,
  SERVICE_FILES,
  SERVICE_CONFIG_PATH,
  SERVICE_CONFIG_TEXT,
  channelOptions,
  credentials,
  connect,
  unary,
  reader,
  richStatus,
  expectError,
  duration,
  durationMs,
  unique,
  deadline,
  waitFor,
};
