package examples_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"testing"
	"time"

	"github.com/coord-dev/coord/client/go/coord"
	cachev1 "github.com/coord-dev/coord/client/go/gen/coord/cache/v1"
	lockv1 "github.com/coord-dev/coord/client/go/gen/coord/lock/v1"
)

// Example_lock takes a lock, writes on its behalf with the grant's fencing token, and releases it.
// The cache refuses a fenced write whose token is older than one it already took for the lock, so a
// holder whose lease ran out (a long pause, a partition) cannot overwrite a later holder's work.
func Example_lock() {
	ctx := context.Background()
	locks := lockv1.NewLockServiceClient(conn)
	cache := cachev1.NewCacheServiceClient(conn)
	sent := time.Now()
	res, err := locks.Acquire(ctx, &lockv1.AcquireRequest{Name: "reports", Mode: lockv1.LockMode_LOCK_MODE_EXCLUSIVE,
		Ttl: coord.Duration(30 * time.Second), Wait: coord.Duration(5 * time.Second), Owner: "report-job"})
	if err != nil {
		log.Fatal(err)
	}
	if !res.GetAcquired() {
		log.Fatalf("busy: held by %v", res.GetHolders())
	}
	grant := res.GetGrant()
	deadline := coord.LeaseDeadline(sent, grant.GetValidFor()) // the lease by this machine's clock
	if time.Now().After(deadline) {
		log.Fatal("lease ran out before the write")
	}
	w, err := cache.Set(ctx, &cachev1.SetRequest{Key: "report:today", Value: []byte("done"),
		Fence: &cachev1.Fence{LockName: "reports", FencingToken: grant.GetFencingToken()}})
	if err != nil {
		log.Fatal(err)
	}
	rel, err := locks.Release(ctx, &lockv1.ReleaseRequest{Name: "reports", LockToken: grant.GetLockToken()})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(w.GetOutcome(), rel.GetOutcome())
	// Output: WRITE_OUTCOME_STORED RELEASE_OUTCOME_RELEASED
}

// Example_lockHold keeps a lock over a Hold stream: acquire, renew with heartbeats while working,
// release. If the stream breaks, the server releases the lock at once rather than after its TTL.
func Example_lockHold() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the stream, and with it the hold, on every return
	locks := lockv1.NewLockServiceClient(conn)
	hold, err := locks.Hold(ctx)
	if err != nil {
		log.Fatal(err)
	}
	err = hold.Send(&lockv1.HoldRequest{Kind: &lockv1.HoldRequest_Acquire{Acquire: &lockv1.AcquireRequest{
		Name: "nightly-import", Mode: lockv1.LockMode_LOCK_MODE_EXCLUSIVE, Ttl: coord.Duration(10 * time.Second),
		Wait: coord.Duration(time.Minute)}}})
	if err != nil {
		log.Fatal(err)
	}
	for {
		msg, err := hold.Recv()
		if err == io.EOF {
			return
		}
		if err != nil {
			log.Fatal(err)
		}
		switch kind := msg.GetKind().(type) {
		case *lockv1.HoldResponse_Queued:
			fmt.Println("queued at", kind.Queued.GetPosition())
		case *lockv1.HoldResponse_Acquired:
			fmt.Println("acquired")
			// ... work, sending a heartbeat every third of the TTL:
			err = hold.Send(&lockv1.HoldRequest{Kind: &lockv1.HoldRequest_Heartbeat{
				Heartbeat: &lockv1.HoldHeartbeat{Ttl: coord.Duration(10 * time.Second)}}})
		case *lockv1.HoldResponse_Renewed:
			fmt.Println("renewed")
			err = hold.Send(&lockv1.HoldRequest{Kind: &lockv1.HoldRequest_Release{Release: &lockv1.HoldRelease{}}})
		case *lockv1.HoldResponse_Lost:
			log.Fatalf("lost: %v", kind.Lost.GetReason()) // stop the protected work at once
		case *lockv1.HoldResponse_Released:
			fmt.Println("released:", kind.Released.GetOutcome())
		}
		if err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// acquired
	// renewed
	// released: RELEASE_OUTCOME_RELEASED
}

func acquire(t *testing.T, locks lockv1.LockServiceClient, lock, owner string) *lockv1.Grant {
	t.Helper()
	res, err := locks.Acquire(context.Background(), &lockv1.AcquireRequest{Name: lock,
		Mode: lockv1.LockMode_LOCK_MODE_EXCLUSIVE, Ttl: coord.Duration(time.Minute), Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	if !res.GetAcquired() || res.GetGrant().GetFencingToken() == 0 || res.GetGrant().GetLockToken() == "" {
		t.Fatalf("%s did not get the lock: %v", owner, res)
	}
	return res.GetGrant()
}

func fencedSet(t *testing.T, cache cachev1.CacheServiceClient, key, lock string, token uint64) *cachev1.SetResponse {
	t.Helper()
	res, err := cache.Set(context.Background(), &cachev1.SetRequest{Key: key, Value: []byte(fmt.Sprint(token)),
		Fence: &cachev1.Fence{LockName: lock, FencingToken: token}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestLockFencingToken(t *testing.T) {
	ctx := context.Background()
	locks := lockv1.NewLockServiceClient(conn)
	cache := cachev1.NewCacheServiceClient(conn)
	lock, key := name(t), name(t)+":data"

	first := acquire(t, locks, lock, "first")
	busy, err := locks.Acquire(ctx, &lockv1.AcquireRequest{Name: lock, Mode: lockv1.LockMode_LOCK_MODE_EXCLUSIVE})
	if err != nil {
		t.Fatal(err)
	}
	if busy.GetAcquired() || len(busy.GetHolders()) != 1 || busy.GetHolders()[0].GetOwner() != "first" {
		t.Fatalf("a try-lock while held: %v", busy)
	}
	if res := fencedSet(t, cache, key, lock, first.GetFencingToken()); res.GetOutcome() != cachev1.WriteOutcome_WRITE_OUTCOME_STORED {
		t.Fatalf("the holder's fenced write: %v", res)
	}
	rel, err := locks.Release(ctx, &lockv1.ReleaseRequest{Name: lock, LockToken: first.GetLockToken()})
	if err != nil || rel.GetOutcome() != lockv1.ReleaseOutcome_RELEASE_OUTCOME_RELEASED {
		t.Fatalf("release: %v %v", rel, err)
	}

	second := acquire(t, locks, lock, "second")
	if second.GetFencingToken() <= first.GetFencingToken() {
		t.Fatalf("fencing tokens must grow: %d then %d", first.GetFencingToken(), second.GetFencingToken())
	}
	if res := fencedSet(t, cache, key, lock, second.GetFencingToken()); res.GetOutcome() != cachev1.WriteOutcome_WRITE_OUTCOME_STORED {
		t.Fatalf("the new holder's fenced write: %v", res)
	}
	// The first holder, unaware it lost the lock, tries again with its old token.
	late := fencedSet(t, cache, key, lock, first.GetFencingToken())
	if late.GetOutcome() != cachev1.WriteOutcome_WRITE_OUTCOME_FENCED || late.GetFencingToken() != second.GetFencingToken() {
		t.Fatalf("a write with the older token: %v", late)
	}
	got, err := cache.Get(ctx, &cachev1.GetRequest{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.GetEntry().GetValue()) != fmt.Sprint(second.GetFencingToken()) {
		t.Fatalf("the value is the second holder's: %q", got.GetEntry().GetValue())
	}
	if _, err := locks.Release(ctx, &lockv1.ReleaseRequest{Name: lock, LockToken: second.GetLockToken()}); err != nil {
		t.Fatal(err)
	}
}

func TestLockHoldExcludesOthers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	locks := lockv1.NewLockServiceClient(conn)
	lock := name(t)
	hold, err := locks.Hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = hold.Send(&lockv1.HoldRequest{Kind: &lockv1.HoldRequest_Acquire{Acquire: &lockv1.AcquireRequest{
		Name: lock, Mode: lockv1.LockMode_LOCK_MODE_EXCLUSIVE, Ttl: coord.Duration(time.Minute), Owner: "holder"}}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := hold.Recv()
	if err != nil {
		t.Fatal(err)
	}
	grant := msg.GetAcquired()
	if grant == nil || grant.GetFencingToken() == 0 {
		t.Fatalf("first Hold answer: %v", msg)
	}
	described, err := locks.Describe(ctx, &lockv1.DescribeRequest{Name: lock})
	if err != nil {
		t.Fatal(err)
	}
	if described.GetHolderCount() != 1 || described.GetHolders()[0].GetFencingToken() != grant.GetFencingToken() {
		t.Fatalf("Describe while held: %v", described)
	}
	other, err := locks.Acquire(ctx, &lockv1.AcquireRequest{Name: lock, Mode: lockv1.LockMode_LOCK_MODE_EXCLUSIVE})
	if err != nil || other.GetAcquired() {
		t.Fatalf("a try-lock while the stream holds the lock: %v %v", other, err)
	}
	// Ending the stream releases the lock at once: the next try-lock succeeds without waiting a TTL.
	if err := hold.Send(&lockv1.HoldRequest{Kind: &lockv1.HoldRequest_Release{Release: &lockv1.HoldRelease{}}}); err != nil {
		t.Fatal(err)
	}
	msg, err = hold.Recv()
	if err != nil || msg.GetReleased().GetOutcome() != lockv1.ReleaseOutcome_RELEASE_OUTCOME_RELEASED {
		t.Fatalf("release over the stream: %v %v", msg, err)
	}
	if _, err := hold.Recv(); err != io.EOF {
		t.Fatalf("the stream ends after the release: %v", err)
	}
	next := acquire(t, locks, lock, "next")
	if next.GetFencingToken() <= grant.GetFencingToken() {
		t.Fatalf("fencing tokens must grow: %d then %d", grant.GetFencingToken(), next.GetFencingToken())
	}
}
