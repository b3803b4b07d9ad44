package coord

import (
	"errors"
	"fmt"
	"testing"
	"time"

	commonv1 "github.com/coord-dev/coord/client/go/gen/coord/common/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// unavailable is the status Coord sends when Redis cannot be reached: ErrorInfo and RetryInfo.
func unavailable(t *testing.T) error {
	t.Helper()
	st, err := status.New(codes.Unavailable, "backend unavailable").WithDetails(
		&errdetails.ErrorInfo{Reason: "BACKEND_UNAVAILABLE", Domain: "coord", Metadata: map[string]string{"backend": "redis"}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(250 * time.Millisecond)},
	)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestErrorOfReadsEveryDetail(t *testing.T) {
	e := ErrorOf(unavailable(t))
	if e.Code != codes.Unavailable || e.Message != "backend unavailable" || e.Domain != "coord" {
		t.Fatalf("%#v", e)
	}
	if !e.HasReason(commonv1.ErrorReason_BACKEND_UNAVAILABLE) || e.Metadata["backend"] != "redis" {
		t.Fatalf("reason and metadata: %#v", e)
	}
	if e.RetryAfter != 250*time.Millisecond {
		t.Fatalf("retry after: %v", e.RetryAfter)
	}
	if got := e.Error(); got != "Unavailable (BACKEND_UNAVAILABLE): backend unavailable" {
		t.Fatalf("message: %q", got)
	}
}

func TestErrorOfFieldViolations(t *testing.T) {
	st, err := status.New(codes.InvalidArgument, "bad").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "requests[3].ttl", Description: "must be positive"},
			{Field: "key", Description: "must not be empty"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	got := ErrorOf(st.Err()).FieldViolations
	want := []FieldViolation{{"requests[3].ttl", "must be positive"}, {"key", "must not be empty"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestErrorOfWrappedAndPlainErrors(t *testing.T) {
	if ErrorOf(nil) != nil || ReasonOf(nil) != commonv1.ErrorReason_ERROR_REASON_UNSPECIFIED {
		t.Fatal("nil is no error")
	}
	wrapped := fmt.Errorf("refreshing the cache: %w", unavailable(t))
	if ReasonOf(wrapped) != commonv1.ErrorReason_BACKEND_UNAVAILABLE {
		t.Fatalf("a wrapped status: %v", ErrorOf(wrapped))
	}
	plain := ErrorOf(errors.New("no status here"))
	if plain.Code != codes.Unknown || plain.Reason != "" || plain.Message != "no status here" {
		t.Fatalf("a plain error: %#v", plain)
	}
	// An *Error read once is returned as it is, and still converts back to its status.
	e := ErrorOf(unavailable(t))
	if ErrorOf(fmt.Errorf("again: %w", e)) != e || status.Code(e) != codes.Unavailable {
		t.Fatal("an *Error is kept")
	}
}

func TestReasonOfUnknownReason(t *testing.T) {
	st, err := status.New(codes.Internal, "x").WithDetails(&errdetails.ErrorInfo{Reason: "FROM_A_NEWER_SERVER"})
	if err != nil {
		t.Fatal(err)
	}
	if ReasonOf(st.Err()) != commonv1.ErrorReason_ERROR_REASON_UNSPECIFIED || ErrorOf(st.Err()).Reason != "FROM_A_NEWER_SERVER" {
		t.Fatal("a reason this version does not know is kept as text, unspecified as an enum")
	}
}
