// Package examples holds the runnable examples of Coord's Go module, in its test files: each one talks
// to a live Coord server named by the COORD_TARGET environment variable (host:port), and `make test`
// runs them against a single Redis and a Redis Cluster. docs/clients.md quotes them.
package examples
