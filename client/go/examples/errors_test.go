package examples_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/coord-dev/coord/client/go/coord"
	cachev1 "github.com/coord-dev/coord/client/go/gen/coord/cache/v1"
	commonv1 "github.com/coord-dev/coord/client/go/gen/coord/common/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Example_errors reads a refused call: its code, the reason to branch on, and the field at fault.
func Example_errors() {
	ctx := context.Background()
	cache := cachev1.NewCacheServiceClient(conn)
	_, err := cache.Get(ctx, &cachev1.GetRequest{Key: ""})
	e := coord.ErrorOf(err)
	fmt.Println(e.Code, e.Reason, e.HasReason(commonv1.ErrorReason_INVALID_FIELD))
	for _, v := range e.FieldViolations {
		fmt.Println(v.Field)
	}
	// Output:
	// InvalidArgument INVALID_FIELD true
	// key
}

func TestEmptyKeyIsInvalidArgument(t *testing.T) {
	ctx := context.Background()
	cache := cachev1.NewCacheServiceClient(conn)
	_, err := cache.Set(ctx, &cachev1.SetRequest{Key: "", Value: []byte("v")})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("want InvalidArgument, got %v", err)
	}
	e := coord.ErrorOf(err)
	if e.Domain != "coord" || coord.ReasonOf(err) != commonv1.ErrorReason_INVALID_FIELD {
		t.Fatalf("error info: domain %q reason %q", e.Domain, e.Reason)
	}
	if e.Metadata["field"] != "key" {
		t.Fatalf("metadata: %v", e.Metadata)
	}
	if len(e.FieldViolations) != 1 || e.FieldViolations[0].Field != "key" || e.FieldViolations[0].Description == "" {
		t.Fatalf("field violations: %v", e.FieldViolations)
	}
	// The *Error still answers grpc-go's own helpers.
	if status.Code(e) != codes.InvalidArgument || status.Convert(e).Message() != e.Message {
		t.Fatalf("status of the *Error: %v", status.Convert(e))
	}
}
