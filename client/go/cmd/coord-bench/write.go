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
// its writes to it, so that they cost the process it measures nothing but the lines. With stream,
// the writes go over one SetStream (at most workers unanswered) instead of unary Set calls.
type writer struct {
	cache   cachev1.CacheServiceClient
	prefix  string
	value   []byte
	ttl     time.Duration
	workers int
	stream  bool
}

func (w writer) serve(ctx context.Context, in io.Reader, out io.Writer) error {
	if w.stream {
		return w.serveStream(ctx, in, out)
	}
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
		var key string
		if key, err = w.key(lines.Text()); err != nil {
			break
		}
		select {
		case keys <- key:
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

// key is the key of one line of input: the prefix and the line's number as four digits.
func (w writer) key(line string) (string, error) {
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || n < 0 || n > 9999 {
		return "", fmt.Errorf("bad key number %q", line)
	}
	return fmt.Sprintf("%s%04d", w.prefix, n), nil
}

// serveStream is serve over one SetStream: a request per line, at most workers of them unanswered
// (a slot is freed by its answer), an answer written to out as it comes.
func (w writer) serveStream(ctx context.Context, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := w.cache.SetStream(ctx)
	if err != nil {
		return err
	}
	slots := make(chan struct{}, w.workers)
	answered := make(chan error, 1)
	acks := make(chan byte, w.workers)
	acked := make(chan struct{})
	go func() { // the answers, until the server ends the stream or one fails
		defer close(acks)
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				answered <- nil
				return
			}
			if err == nil && resp.GetError() != nil {
				err = fmt.Errorf("set #%d: %s", resp.GetRequestId(), resp.GetError().GetMessage())
			}
			if err != nil {
				acks <- '!'
				answered <- err
				return
			}
			acks <- '.'
			<-slots
		}
	}()
	go func() { // the answers to out: those waiting in one write, not a syscall each
		defer close(acked)
		buf := make([]byte, 0, w.workers)
		for ack := range acks {
			buf = append(buf[:0], ack)
			for more := true; more; {
				select {
				case next, ok := <-acks:
					if !ok {
						more = false
						break
					}
					buf = append(buf, next)
				default:
					more = false
				}
			}
			out.Write(buf)
		}
	}()
	defer func() { <-acked }() // every answer written before serveStream returns
	lines := bufio.NewScanner(in)
	var id uint64
	var lineErr error // a bad line: the writes sent before it are still answered
	for lineErr == nil && lines.Scan() {
		var key string
		if key, lineErr = w.key(lines.Text()); lineErr != nil {
			break
		}
		select {
		case slots <- struct{}{}:
		case err := <-answered:
			if err == nil {
				err = io.ErrUnexpectedEOF // the server ended the stream while writes were due
			}
			return err
		}
		id++
		req := &cachev1.SetRequest{Key: key, Value: w.value, Ttl: coord.Duration(w.ttl)}
		if err := stream.Send(&cachev1.SetStreamRequest{RequestId: id, Set: req}); err != nil {
			cancel()
			<-answered
			return err
		}
	}
	if lineErr == nil {
		lineErr = lines.Err()
	}
	if err := stream.CloseSend(); err != nil {
		cancel()
		<-answered
		return err
	}
	// Every answer is read: the server ends the stream after the last.
	if err := <-answered; err != nil {
		return err
	}
	return lineErr
}
