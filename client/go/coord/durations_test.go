package coord

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

func TestDurations(t *testing.T) {
	if Duration(0) != nil || DurationOf(nil) != 0 {
		t.Fatal("zero and unset are the same")
	}
	if d := Duration(1500 * time.Millisecond); d.GetSeconds() != 1 || d.GetNanos() != 500e6 || DurationOf(d) != 1500*time.Millisecond {
		t.Fatalf("1.5 s: %v", d)
	}
}

func TestTimes(t *testing.T) {
	if Timestamp(time.Time{}) != nil || !TimeOf(nil).IsZero() {
		t.Fatal("the zero time and an unset timestamp are the same")
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	if !TimeOf(Timestamp(at)).Equal(at) {
		t.Fatal("round trip")
	}
}

func TestLeaseDeadline(t *testing.T) {
	sent := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := LeaseDeadline(sent, durationpb.New(29*time.Second)); !got.Equal(sent.Add(29 * time.Second)) {
		t.Fatalf("deadline %v", got)
	}
}
