package coord

import (
	"errors"
	"fmt"
	"time"

	commonv1 "github.com/coord-dev/coord/client/go/gen/coord/common/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failed Coord call, read from its gRPC status and the details Coord attaches to it
// (google.rpc.ErrorInfo, BadRequest and RetryInfo). Branch on Code and Reason, never on Message,
// which is text for humans.
type Error struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Message is the status message.
	Message string
	// Reason is the ErrorInfo reason, a value name of coord.common.v1.ErrorReason such as
	// "INVALID_FIELD"; empty when the status carried no ErrorInfo (a transport error, say).
	Reason string
	// Domain is the ErrorInfo domain, "coord" for Coord's own errors.
	Domain string
	// Metadata holds the ErrorInfo details, such as "field", "limit" or "actual".
	Metadata map[string]string
	// FieldViolations lists the BadRequest entries: which request fields were refused and why.
	FieldViolations []FieldViolation
	// RetryAfter is the RetryInfo delay: wait at least this long before retrying an idempotent call.
	// Zero when the server gave none.
	RetryAfter time.Duration
	// status is the status the error was read from, for GRPCStatus.
	status *status.Status
}

// FieldViolation is one refused request field: Field is its path ("key", "requests[3].ttl").
type FieldViolation struct {
	Field       string
	Description string
}

// ErrorOf reads err, as returned by a generated client's method, into an [Error]. It returns nil for
// nil. An error that is no gRPC status (or wraps none) becomes an Error with code Unknown.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	var own *Error
	if errors.As(err, &own) {
		return own
	}
	st, ok := status.FromError(err)
	if !ok {
		// status.FromError does not look through wrapping in every grpc-go version; errors.As does.
		var carrier interface{ GRPCStatus() *status.Status }
		if errors.As(err, &carrier) {
			st = carrier.GRPCStatus()
		}
	}
	e := &Error{Code: st.Code(), Message: st.Message(), status: st}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			e.Reason, e.Domain, e.Metadata = d.GetReason(), d.GetDomain(), d.GetMetadata()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.FieldViolations = append(e.FieldViolations, FieldViolation{v.GetField(), v.GetDescription()})
			}
		case *errdetails.RetryInfo:
			e.RetryAfter = d.GetRetryDelay().AsDuration()
		}
	}
	return e
}

// Error formats the code, the reason when there is one, and the message.
func (e *Error) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Reason, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// GRPCStatus returns the status the error was read from, so that status.Code and status.Convert
// still work on an *Error.
func (e *Error) GRPCStatus() *status.Status {
	if e.status == nil {
		return status.New(e.Code, e.Message)
	}
	return e.status
}

// HasReason tells whether the error's reason is r (commonv1.ErrorReason_INVALID_FIELD, ...).
func (e *Error) HasReason(r commonv1.ErrorReason) bool {
	return e != nil && e.Reason == r.String()
}

// ReasonOf returns the ErrorInfo reason of err as the enum value, ERROR_REASON_UNSPECIFIED when err
// is nil, carries no reason, or one this version of the protos does not know.
func ReasonOf(err error) commonv1.ErrorReason {
	e := ErrorOf(err)
	if e == nil {
		return commonv1.ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	return commonv1.ErrorReason(commonv1.ErrorReason_value[e.Reason])
}
