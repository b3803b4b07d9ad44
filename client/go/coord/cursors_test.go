package coord

import (
	"testing"

	eventsv1 "github.com/coord-dev/coord/client/go/gen/coord/events/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func subscribed(openSeconds int64, starts ...*eventsv1.TopicCursor) *eventsv1.SubscribeResponse {
	return &eventsv1.SubscribeResponse{Frame: &eventsv1.SubscribeResponse_Subscribed{Subscribed: &eventsv1.Subscribed{
		Starts: starts, OpenTime: &timestamppb.Timestamp{Seconds: openSeconds}}}}
}

func eventsFrame(events ...*eventsv1.Event) *eventsv1.SubscribeResponse {
	return &eventsv1.SubscribeResponse{Frame: &eventsv1.SubscribeResponse_Events{Events: &eventsv1.Events{Events: events}}}
}

func progress(cursors ...*eventsv1.TopicCursor) *eventsv1.SubscribeResponse {
	return &eventsv1.SubscribeResponse{Frame: &eventsv1.SubscribeResponse_Progress{Progress: &eventsv1.Progress{Cursors: cursors}}}
}

func TestCursorsFollowFrames(t *testing.T) {
	var c Cursors
	c.Observe(subscribed(100, &eventsv1.TopicCursor{Topic: "a", AfterId: "5-0"}, &eventsv1.TopicCursor{Topic: "b", AfterId: "0-0"}))
	c.Observe(eventsFrame(&eventsv1.Event{Topic: "a", Id: "7-1"}, &eventsv1.Event{Topic: "a", Id: "10-0"}))
	// A later Subscribed frame (a pattern picked up a topic) neither moves known topics nor open_time.
	c.Observe(subscribed(200, &eventsv1.TopicCursor{Topic: "a", AfterId: "5-0"}, &eventsv1.TopicCursor{Topic: "c", AfterId: "9-0"}))
	// Progress moves a cursor forward only; ids compare as numbers, not text ("9" < "10").
	c.Observe(progress(&eventsv1.TopicCursor{Topic: "a", AfterId: "9-5"}, &eventsv1.TopicCursor{Topic: "b", AfterId: "3"}))
	c.Advance("b", "") // a volatile event has no position
	for topic, want := range map[string]string{"a": "10-0", "b": "3", "c": "9-0"} {
		if got := c.After(topic); got != want {
			t.Errorf("topic %s: after %q, want %q", topic, got, want)
		}
	}
	first := &eventsv1.SubscribeRequest{Topics: []string{"a", "b", "c*"}, Start: eventsv1.StartPosition_START_POSITION_LATEST,
		Cursors: []*eventsv1.TopicCursor{{Topic: "a", AfterId: "1-0"}}}
	req := c.Resume(first)
	if req.GetStart() != eventsv1.StartPosition_START_POSITION_AT_TIME || req.GetStartTime().GetSeconds() != 100 {
		t.Errorf("a resumed LATEST subscription starts at the first open_time: %v", req)
	}
	if len(req.GetCursors()) != 3 || req.GetCursors()[0].GetAfterId() != "10-0" || req.GetCursors()[2].GetTopic() != "c" {
		t.Errorf("cursors: %v", req.GetCursors())
	}
	if len(first.GetCursors()) != 1 || first.GetCursors()[0].GetAfterId() != "1-0" || first.GetStartTime() != nil {
		t.Errorf("the first request is left as it was: %v", first)
	}
}

func TestCursorsResumeEarliestKeepsStart(t *testing.T) {
	var c Cursors
	c.Observe(subscribed(100, &eventsv1.TopicCursor{Topic: "a", AfterId: "0-0"}))
	req := c.Resume(&eventsv1.SubscribeRequest{Topics: []string{"a"}, Start: eventsv1.StartPosition_START_POSITION_EARLIEST})
	if req.GetStart() != eventsv1.StartPosition_START_POSITION_EARLIEST || req.GetStartTime() != nil {
		t.Fatalf("%v", req)
	}
}
