package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coord-dev/coord/client/go/coord"
	cachev1 "github.com/coord-dev/coord/client/go/gen/coord/cache/v1"
)

// TestRun runs the benchmark briefly against COORD_TARGET and checks what it counts, not how fast.
func TestRun(t *testing.T) {
	res, err := run(context.Background(), dial(t), "coord-bench:"+t.Name(), 4, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls == 0 || res.Errors != 0 || res.Concurrency != 4 || res.OpsPerS <= 0 {
		t.Fatalf("%+v", res)
	}
}

// TestWrite hands the writer three key numbers and a bad line: three Sets answered, then the error.
func TestWrite(t *testing.T) {
	testWrite(t, false)
}

// TestWriteStream is TestWrite with the writes over one SetStream.
func TestWriteStream(t *testing.T) {
	testWrite(t, true)
}

func testWrite(t *testing.T, stream bool) {
	cache := dial(t)
	prefix := "coord-bench:" + t.Name() + ":"
	w := writer{cache, prefix, []byte("abc"), time.Minute, 2, stream}
	var out strings.Builder
	err := w.serve(context.Background(), strings.NewReader("1\n2\n3\nfour\n"), &out)
	if err == nil || !strings.Contains(err.Error(), `bad key number "four"`) {
		t.Fatalf("want the bad line's error, got %v", err)
	}
	if out.String() != "..." {
		t.Fatalf("want three answers, got %q", out.String())
	}
	got, err := cache.Get(context.Background(), &cachev1.GetRequest{Key: prefix + "0002"})
	if err != nil || string(got.GetEntry().GetValue()) != "abc" {
		t.Fatalf("key 2 was not written: %v %v", got, err)
	}
}

// dial connects to COORD_TARGET, closed when the test ends; the test is skipped without it.
func dial(t *testing.T) cachev1.CacheServiceClient {
	target := os.Getenv("COORD_TARGET")
	if target == "" {
		t.Skip("COORD_TARGET is not set: needs a live Coord server")
	}
	conn, err := coord.Dial(target, coord.Insecure())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return cachev1.NewCacheServiceClient(conn)
}
