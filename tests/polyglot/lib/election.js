'use strict';
// ElectionService (coord.election.v1) for the Node suite, loaded at run time from protos/ with the
// same loader options as lib/coord.js, and a stub for it on a channel configured as lib/coord.js
// configures its own.
//
// Kept apart from lib/coord.js's service table, which the platform file checks against the service
// config and the list of services it expects.

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const {channelOptions, credentials} = require('./coord');

const REPO = path.resolve(__dirname, '..', '..', '..');

const ELECTION_FILE = 'coord/election/v1/election.proto';
const ELECTION_SERVICE_NAME = 'coord.election.v1.ElectionService';

// As lib/coord.js: int64/uint64 as decimal strings, enums as names, defaults filled in, and each
// oneof with a virtual field naming the member set.
const definition = protoLoader.loadSync([ELECTION_FILE], {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [path.join(REPO, 'protos'), path.join(__dirname, '..', 'protos')],
});
const ElectionService = grpc.loadPackageDefinition(definition).coord.election.v1.ElectionService;

// connectElection() opens a channel of its own and returns {election, channel, close}.
function connectElection(variable = 'COORD_TARGET') {
  const address = process.env[variable];
  if (!address) {
    throw new Error(`set ${variable} to the host:port of a running Coord server`);
  }
  const creds = credentials();
  const channel = new grpc.Channel(address, creds, {
    ...channelOptions(),
    'grpc.use_local_subchannel_pool': 1,
  });
  const election = new ElectionService(address, creds, {channelOverride: channel});
  return {election, channel, close: () => channel.close()};
}

module.exports = {ELECTION_FILE, ELECTION_SERVICE_NAME, ElectionService, connectElection};
