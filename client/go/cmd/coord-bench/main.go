// Command coord-bench measures cache reads through the Go stubs: Concurrency goroutines call
// CacheService.Get on one key over one connection for a fixed time, then it prints one JSON line:
//
//	{"ops_per_s":41234.5,"calls":412345,"errors":0,"concurrency":64,"seconds":10.0}
//
// Usage: coord-bench [-target host:port] [-c 64] [-d 10s] (the target defaults to $COORD_TARGET).
//
// With -write PREFIX it is another client's writer instead (see write.go): coord-bench -write hot:
// [-size 100] [-ttl 10m] [-c 16] [-stream] reads key numbers on stdin and answers each Set done on stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coord-dev/coord/client/go/coord"
	cachev1 "github.com/coord-dev/coord/client/go/gen/coord/cache/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// result is the printed line.
type result struct {
	OpsPerS     float64 `json:"ops_per_s"`
	Calls       int64   `json:"calls"`
	Errors      int64   `json:"errors"`
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
}

func main() {
	target := flag.String("target", envOr("COORD_TARGET", "127.0.0.1:50051"), "Coord server, host:port")
	concurrency := flag.Int("c", 64, "calls in flight at once")
	duration := flag.Duration("d", 10*time.Second, "how long to run")
	key := flag.String("key", "coord-bench", "the cache key read")
	write := flag.String("write", "", "be a writer of keys with this prefix, numbered on stdin")
	size := flag.Int("size", 100, "-write: bytes per value")
	ttl := flag.Duration("ttl", 10*time.Minute, "-write: TTL of each write")
	stream := flag.Bool("stream", false, "-write: over one SetStream instead of unary Set calls")
	flag.Parse()
	if *concurrency < 1 || *duration <= 0 {
		log.Fatal("-c must be at least 1 and -d positive")
	}
	conn, err := coord.Dial(*target, coord.Insecure())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	if *write != "" {
		w := writer{cachev1.NewCacheServiceClient(conn), *write, make([]byte, *size), *ttl, *concurrency, *stream}
		if err := w.serve(context.Background(), os.Stdin, os.Stdout); err != nil { // unbuffered
			log.Fatal(err)
		}
		return
	}
	res, err := run(context.Background(), cachev1.NewCacheServiceClient(conn), *key, *concurrency, *duration)
	if err != nil {
		log.Fatal(err)
	}
	line, err := json.Marshal(res)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(line))
}

// run stores a 100-byte value under key, then reads it from concurrency goroutines for duration.
func run(ctx context.Context, cache cachev1.CacheServiceClient, key string, concurrency int, duration time.Duration) (result, error) {
	value := make([]byte, 100)
	if _, err := cache.Set(ctx, &cachev1.SetRequest{Key: key, Value: value, Ttl: coord.Duration(time.Hour)}); err != nil {
		return result{}, err
	}
	var calls, errs int64
	runCtx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &cachev1.GetRequest{Key: key}
			for runCtx.Err() == nil {
				_, err := cache.Get(runCtx, req)
				switch code := status.Code(err); {
				case err == nil:
					atomic.AddInt64(&calls, 1)
				case code == codes.DeadlineExceeded || code == codes.Canceled:
					// The end of the run cut the call short (the server may see the deadline pass a
					// little before this process does): not an error.
				default:
					if atomic.AddInt64(&errs, 1) == 1 {
						log.Printf("first error: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	return result{
		OpsPerS:     float64(calls) / elapsed,
		Calls:       calls,
		Errors:      errs,
		Concurrency: concurrency,
		Seconds:     elapsed,
	}, nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
