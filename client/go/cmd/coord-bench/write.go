package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coord-dev/coord/client/go/coord"
	cachev1 "github.com/coord-dev/coord/client/go/gen/coord/cache/v1"
)

// writer is the -write mode: another client's writes, handed over one line at a time. Each line of
// in is the number of a key (prefix and the number as four digits); it is written once (Set, a
// value of size bytes, ttl) by one of workers goroutines, and each write done is answered on out
// with "." ("!" and an error when it failed, which ends the run). Python's bench.near_cache hands
// its writes to it, so that they cost the process it measures nothing but the lines.
type writer struct {
	cache   cachev1.CacheServiceClient
	prefix  string
	value   []byte
	ttl     time.Duration
	workers int
}

func (w writer) serve(ctx context.Context, in io.Reader, out io.Writer) error {
	keys := make(chan string, 1024)
	failed := make(chan error, 1)
	var mu sync.Mutex // out is written by every worker
	var wg sync.WaitGroup
	for i := 0; i < w.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range keys {
				_, err := w.cache.Set(ctx, &cachev1.SetRequest{Key: key, Value: w.value, Ttl: coord.Duration(w.ttl)})
				mu.Lock()
				if err != nil {
					fmt.Fprint(out, "!")
				} else {
					fmt.Fprint(out, ".")
				}
				mu.Unlock()
				if err != nil {
					select {
					case failed <- fmt.Errorf("set %s: %w", key, err):
					default:
					}
					return
				}
			}
		}()
	}
	lines := bufio.NewScanner(in)
	var err error
	for err == nil && lines.Scan() {
		n, parse := strconv.Atoi(strings.TrimSpace(lines.Text()))
		if parse != nil || n < 0 || n > 9999 {
			err = fmt.Errorf("bad key number %q", lines.Text())
			break
		}
		select {
		case keys <- fmt.Sprintf("%s%04d", w.prefix, n):
		case err = <-failed:
		}
	}
	close(keys)
	wg.Wait()
	if err == nil {
		err = lines.Err()
	}
	if err == nil {
		select {
		case err = <-failed:
		default:
		}
	}
	return err
}
