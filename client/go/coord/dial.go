package coord

import (
	_ "embed"

	"google.golang.org/grpc"
)

// ServiceConfig is the recommended gRPC service config for Coord, client/coord_client/service_config.json
// as shipped with the protos: a timeout per method, and retries on UNAVAILABLE for the idempotent
// methods only (never for a write whose second attempt could report something else).
//
//go:embed service_config.json
var ServiceConfig string

// Dial opens a client connection to a Coord server at target ("host:port", or any gRPC target) with
// [ServiceConfig] as the default service config. opts come after it, so they may replace it. Say how
// to secure the connection: grpc.WithTransportCredentials for TLS, or [Insecure] for plaintext.
func Dial(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	all := append([]grpc.DialOption{grpc.WithDefaultServiceConfig(ServiceConfig)}, opts...)
	return grpc.Dial(target, all...)
}

// Insecure is the option for a plaintext connection (no TLS): for a server on loopback or inside a
// network you trust. It is grpc.WithInsecure, which every grpc-go version still accepts.
func Insecure() grpc.DialOption {
	return grpc.WithInsecure()
}
