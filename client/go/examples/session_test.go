package examples_test

import (
	"context"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/coord-dev/coord/client/go/coord"
	sessionv1 "github.com/coord-dev/coord/client/go/gen/coord/session/v1"
)

// Example_session creates a session, validates its token as each request would, and revokes it.
func Example_session() {
	ctx := context.Background()
	sessions := sessionv1.NewSessionServiceClient(conn)
	created, err := sessions.Create(ctx, &sessionv1.CreateRequest{Subject: "alice",
		IdleTimeout: coord.Duration(30 * time.Minute), Attributes: map[string][]byte{"role": []byte("admin")}})
	if err != nil {
		log.Fatal(err)
	}
	valid, err := sessions.Validate(ctx, &sessionv1.ValidateRequest{Token: created.GetToken(), Touch: true,
		AttributeNames: []string{"role"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(valid.GetSession().GetSubject(), string(valid.GetSession().GetAttributes()["role"]))
	if _, err := sessions.Revoke(ctx, &sessionv1.RevokeRequest{
		Target: &sessionv1.RevokeRequest_Token{Token: created.GetToken()}}); err != nil {
		log.Fatal(err)
	}
	after, err := sessions.Validate(ctx, &sessionv1.ValidateRequest{Token: created.GetToken()})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(after.GetSession() == nil, after.GetInvalid().GetReason())
	// Output:
	// alice admin
	// true INVALID_REASON_REVOKED
}

func TestSessionLifecycle(t *testing.T) {
	ctx := context.Background()
	sessions := sessionv1.NewSessionServiceClient(conn)
	subject := name(t)
	created, err := sessions.Create(ctx, &sessionv1.CreateRequest{Subject: subject,
		IdleTimeout: coord.Duration(time.Hour), AbsoluteTimeout: coord.Duration(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	s := created.GetSession()
	idle, absolute := coord.TimeOf(s.GetIdleExpireTime()), coord.TimeOf(s.GetAbsoluteExpireTime())
	if created.GetToken() == "" || s.GetSubject() != subject || !idle.Before(absolute) {
		t.Fatalf("created: %v", s)
	}
	updated, err := sessions.Update(ctx, &sessionv1.UpdateRequest{Token: created.GetToken(),
		Increment: map[string]int64{"visits": 2}})
	if err != nil {
		t.Fatal(err)
	}
	if updated.GetUpdated().GetIncrementResults()["visits"] != 2 {
		t.Fatalf("update: %v", updated)
	}
	list, err := sessions.ListSessions(ctx, &sessionv1.ListSessionsRequest{Subject: subject})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.GetSessions()) != 1 || list.GetSessions()[0].GetSessionId() != s.GetSessionId() {
		t.Fatalf("the subject's sessions: %v", list.GetSessions())
	}
	revoked, err := sessions.Revoke(ctx, &sessionv1.RevokeRequest{
		Target: &sessionv1.RevokeRequest_SessionId{SessionId: s.GetSessionId()}})
	if err != nil || !revoked.GetRevoked() {
		t.Fatalf("revoke by id: %v %v", revoked, err)
	}
	after, err := sessions.Validate(ctx, &sessionv1.ValidateRequest{Token: created.GetToken()})
	if err != nil {
		t.Fatal(err)
	}
	if after.GetInvalid().GetReason() != sessionv1.InvalidReason_INVALID_REASON_REVOKED {
		t.Fatalf("validate after revoke: %v", after)
	}
}
