package coord

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Duration converts d for a request field such as a TTL or a wait. Zero gives nil: the field is
// unset, which Coord reads as "the server's default" where a field has one.
func Duration(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

// DurationOf reads a response's duration; an unset one (nil) is 0.
func DurationOf(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

// Timestamp converts t for a request field such as SubscribeRequest.start_time. The zero time gives
// nil (unset).
func Timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// TimeOf reads a response's timestamp. An unset one (nil) is the zero time.Time, so IsZero tells it
// apart; protobuf's own AsTime would give the Unix epoch instead.
func TimeOf(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

// LeaseDeadline is when a lock grant should be treated as gone, by this machine's clock: the local
// time the request was sent plus the grant's valid_for. It errs on the safe side whatever the clock
// difference between client and server (Grant.valid_for in protos/coord/lock/v1/lock.proto).
// sent should come from time.Now() taken just before the call, which carries the monotonic clock.
func LeaseDeadline(sent time.Time, validFor *durationpb.Duration) time.Time {
	return sent.Add(DurationOf(validFor))
}
