package examples_test

import (
	"context"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/coord-dev/coord/client/go/coord"
	ratelimitv1 "github.com/coord-dev/coord/client/go/gen/coord/ratelimit/v1"
)

// Example_rateLimit checks a limit of two logins an hour: the third attempt is denied, with how long
// to wait. A denial is an answer, not an error.
func Example_rateLimit() {
	ctx := context.Background()
	limits := ratelimitv1.NewRateLimitServiceClient(conn)
	// Start from nothing consumed (as after a successful login).
	if _, err := limits.Reset(ctx, &ratelimitv1.ResetRequest{Key: "login:alice"}); err != nil {
		log.Fatal(err)
	}
	check := &ratelimitv1.CheckRequest{Descriptors: []*ratelimitv1.Descriptor{{Key: "login:alice",
		RuleSource: &ratelimitv1.Descriptor_Rule{Rule: &ratelimitv1.Rule{Name: "logins", Limit: 2,
			Period: coord.Duration(time.Hour)}}}}}
	for i := 0; i < 3; i++ {
		res, err := limits.Check(ctx, check)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(res.GetAllowed(), res.GetRemaining(), coord.DurationOf(res.GetRetryAfter()).Round(time.Minute))
	}
	// Output:
	// true 1 0s
	// true 0 0s
	// false 0 30m0s
}

func TestRateLimitAllOrNothing(t *testing.T) {
	ctx := context.Background()
	limits := ratelimitv1.NewRateLimitServiceClient(conn)
	scope := name(t)
	rule := func(limit int64) *ratelimitv1.Descriptor_Rule {
		return &ratelimitv1.Descriptor_Rule{Rule: &ratelimitv1.Rule{Limit: limit, Period: coord.Duration(time.Hour),
			Algorithm: ratelimitv1.Algorithm_ALGORITHM_SLIDING_LOG}}
	}
	// Two limits on one request: 1 per hour for the user, 5 per hour for the user's tenant. Both share
	// a scope, so one atomic step decides them on a Redis Cluster too.
	check := &ratelimitv1.CheckRequest{Scope: scope, Descriptors: []*ratelimitv1.Descriptor{
		{Key: "user", RuleSource: rule(1)},
		{Key: "tenant", RuleSource: rule(5)},
	}}
	first, err := limits.Check(ctx, check)
	if err != nil {
		t.Fatal(err)
	}
	if !first.GetAllowed() || first.GetRemaining() != 0 || len(first.GetStatuses()) != 2 {
		t.Fatalf("first check: %v", first)
	}
	second, err := limits.Check(ctx, check)
	if err != nil {
		t.Fatal(err)
	}
	if second.GetAllowed() || coord.DurationOf(second.GetRetryAfter()) <= 0 {
		t.Fatalf("second check: %v", second)
	}
	// All or nothing: the denied check took nothing from the tenant's limit either.
	tenant := second.GetStatuses()[1]
	if !tenant.GetAllowed() || tenant.GetConsumed() || tenant.GetRemaining() != 4 {
		t.Fatalf("the tenant's status after a denied check: %v", tenant)
	}
}
