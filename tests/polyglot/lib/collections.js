'use strict';
// The collection services (coord.collections.v1: MapService, ListService, SetService,
// SortedSetService) for the Node suite, loaded at run time from protos/ with the same loader options
// as lib/coord.js, and stubs for them on a channel configured as lib/coord.js configures its own.
//
// Kept apart from lib/coord.js's service table, which the platform file checks against the service
// config and the list of services it expects.

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const {channelOptions, credentials} = require('./coord');

const REPO = path.resolve(__dirname, '..', '..', '..');

const COLLECTION_FILES = {
  map: 'coord/collections/v1/map.proto',
  list: 'coord/collections/v1/list.proto',
  set: 'coord/collections/v1/set.proto',
  sortedSet: 'coord/collections/v1/sorted_set.proto',
};

// As lib/coord.js: int64/uint64 as decimal strings, enums as names, defaults filled in, and each
// oneof with a virtual field naming the member set.
const definition = protoLoader.loadSync(Object.values(COLLECTION_FILES), {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [path.join(REPO, 'protos'), path.join(__dirname, '..', 'protos')],
});
const v1 = grpc.loadPackageDefinition(definition).coord.collections.v1;

const collectionServices = {
  map: v1.MapService,
  list: v1.ListService,
  set: v1.SetService,
  sortedSet: v1.SortedSetService,
};

const COLLECTION_SERVICE_NAMES = [
  'coord.collections.v1.ListService',
  'coord.collections.v1.MapService',
  'coord.collections.v1.SetService',
  'coord.collections.v1.SortedSetService',
];

// connectCollections() opens a channel of its own and returns a stub per collection service on it.
// The channel takes its own subchannel pool, so two of them are two clients with two connections
// (grpc-js would otherwise share one connection between channels of equal target and options).
function connectCollections(variable = 'COORD_TARGET') {
  const address = process.env[variable];
  if (!address) {
    throw new Error(`set ${variable} to the host:port of a running Coord server`);
  }
  const creds = credentials();
  const channel = new grpc.Channel(address, creds, {
    ...channelOptions(),
    'grpc.use_local_subchannel_pool': 1,
  });
  const stubs = {};
  for (const [name, Service] of Object.entries(collectionServices)) {
    stubs[name] = new Service(address, creds, {channelOverride: channel});
  }
  return {...stubs, channel, close: () => channel.close()};
}

module.exports = {
  COLLECTION_FILES,
  COLLECTION_SERVICE_NAMES,
  collectionServices,
  connectCollections,
};
