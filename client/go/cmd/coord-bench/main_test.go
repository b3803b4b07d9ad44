package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/coord-dev/coord/client/go/coord"
	cachev1 "github.com/coord-dev/coord/client/go/gen/coord/cache/v1"
)

// TestRun runs the benchmark briefly against COORD_TARGET and checks what it counts, not how fast.
func TestRun(t *testing.T) {
	target := os.Getenv("COORD_TARGET")
	if target == "" {
		t.Skip("COORD_TARGET is not set: needs a live Coord server")
	}
	conn, err := coord.Dial(target, coord.Insecure())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := run(context.Background(), cachev1.NewCacheServiceClient(conn), "coord-bench:"+t.Name(), 4, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls == 0 || res.Errors != 0 || res.Concurrency != 4 || res.OpsPerS <= 0 {
		t.Fatalf("%+v", res)
	}
}
