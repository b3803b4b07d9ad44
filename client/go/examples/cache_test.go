package examples_test

import (
	"context"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/coord-dev/coord/client/go/coord"
	cachev1 "github.com/coord-dev/coord/client/go/gen/coord/cache/v1"
)

// Example_cache writes an entry, then updates it with compare-and-set: the write carries the version
// it read, and a writer holding an older version is refused.
func Example_cache() {
	ctx := context.Background()
	cache := cachev1.NewCacheServiceClient(conn)
	first, err := cache.Set(ctx, &cachev1.SetRequest{Key: "profile:42", Value: []byte("v1"),
		Ttl: coord.Duration(time.Hour)})
	if err != nil {
		log.Fatal(err)
	}
	// Only if nobody wrote since version first.Version:
	second, err := cache.Set(ctx, &cachev1.SetRequest{Key: "profile:42", Value: []byte("v2"),
		Condition: &cachev1.SetRequest_IfVersion{IfVersion: first.GetVersion()}})
	if err != nil {
		log.Fatal(err)
	}
	// A second writer that read the same version loses.
	stale, err := cache.Set(ctx, &cachev1.SetRequest{Key: "profile:42", Value: []byte("v3"),
		Condition: &cachev1.SetRequest_IfVersion{IfVersion: first.GetVersion()}})
	if err != nil {
		log.Fatal(err)
	}
	got, err := cache.Get(ctx, &cachev1.GetRequest{Key: "profile:42"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(second.GetOutcome(), stale.GetOutcome())
	fmt.Println(string(got.GetEntry().GetValue()), got.GetEntry().GetVersion() == second.GetVersion())
	// Output:
	// WRITE_OUTCOME_STORED WRITE_OUTCOME_VERSION_MISMATCH
	// v2 true
}

func TestCacheRoundTrip(t *testing.T) {
	ctx := context.Background()
	cache := cachev1.NewCacheServiceClient(conn)
	key := name(t)
	value := []byte{0, 1, 2, 0xff} // bytes, not text: stored and returned as they are
	set, err := cache.Set(ctx, &cachev1.SetRequest{Key: key, Value: value, Ttl: coord.Duration(time.Minute),
		Condition: &cachev1.SetRequest_IfAbsent{IfAbsent: &cachev1.IfAbsent{}}})
	if err != nil {
		t.Fatal(err)
	}
	if set.GetOutcome() != cachev1.WriteOutcome_WRITE_OUTCOME_STORED || set.GetVersion() == 0 {
		t.Fatalf("first write: %v", set)
	}
	if coord.TimeOf(set.GetExpireTime()).IsZero() {
		t.Fatalf("a stored entry with a TTL has an expire time: %v", set)
	}
	got, err := cache.Get(ctx, &cachev1.GetRequest{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	entry := got.GetEntry()
	if !entry.GetFound() || string(entry.GetValue()) != string(value) || entry.GetVersion() != set.GetVersion() {
		t.Fatalf("read back %v, wrote version %d", entry, set.GetVersion())
	}
	again, err := cache.Set(ctx, &cachev1.SetRequest{Key: key, Value: []byte("other"),
		Condition: &cachev1.SetRequest_IfAbsent{IfAbsent: &cachev1.IfAbsent{}}})
	if err != nil {
		t.Fatal(err)
	}
	if again.GetOutcome() != cachev1.WriteOutcome_WRITE_OUTCOME_ALREADY_EXISTS {
		t.Fatalf("if_absent on an existing key: %v", again.GetOutcome())
	}
}

func TestCacheCompareAndSet(t *testing.T) {
	ctx := context.Background()
	cache := cachev1.NewCacheServiceClient(conn)
	key := name(t)
	missing, err := cache.Set(ctx, &cachev1.SetRequest{Key: key, Value: []byte("x"),
		Condition: &cachev1.SetRequest_IfVersion{IfVersion: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if missing.GetOutcome() != cachev1.WriteOutcome_WRITE_OUTCOME_NOT_FOUND {
		t.Fatalf("compare-and-set on a missing key: %v", missing.GetOutcome())
	}
	first, err := cache.Set(ctx, &cachev1.SetRequest{Key: key, Value: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	second, err := cache.Set(ctx, &cachev1.SetRequest{Key: key, Value: []byte("b"),
		Condition: &cachev1.SetRequest_IfVersion{IfVersion: first.GetVersion()}})
	if err != nil {
		t.Fatal(err)
	}
	if second.GetOutcome() != cachev1.WriteOutcome_WRITE_OUTCOME_STORED || second.GetVersion() <= first.GetVersion() {
		t.Fatalf("compare-and-set with the current version: %v after %v", second, first)
	}
	stale, err := cache.Set(ctx, &cachev1.SetRequest{Key: key, Value: []byte("c"),
		Condition: &cachev1.SetRequest_IfVersion{IfVersion: first.GetVersion()}})
	if err != nil {
		t.Fatal(err)
	}
	if stale.GetOutcome() != cachev1.WriteOutcome_WRITE_OUTCOME_VERSION_MISMATCH {
		t.Fatalf("compare-and-set with a stale version: %v", stale.GetOutcome())
	}
	// A conditional delete follows the same rule: the stale version deletes nothing.
	del, err := cache.Delete(ctx, &cachev1.DeleteRequest{Keys: []string{key}, IfVersion: first.GetVersion()})
	if err != nil {
		t.Fatal(err)
	}
	if del.GetDeletedCount() != 0 || del.GetResults()[0].GetOutcome() != cachev1.DeleteOutcome_DELETE_OUTCOME_VERSION_MISMATCH {
		t.Fatalf("delete with a stale version: %v", del)
	}
	got, err := cache.Get(ctx, &cachev1.GetRequest{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.GetEntry().GetValue()) != "b" || got.GetEntry().GetVersion() != second.GetVersion() {
		t.Fatalf("after the refused writes: %v", got.GetEntry())
	}
}
