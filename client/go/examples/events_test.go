package examples_test

import (
	"context"
	"fmt"
	"log"
	"testing"
	"time"

	"github.com/coord-dev/coord/client/go/coord"
	eventsv1 "github.com/coord-dev/coord/client/go/gen/coord/events/v1"
)

// Example_events subscribes to a topic, stops, and resumes where it stopped: coord.Cursors keeps the
// position of each topic from the frames it is shown, and builds the request that resumes from it.
func Example_events() {
	ctx := context.Background()
	events := eventsv1.NewEventsServiceClient(conn)
	publish := func(data string) *eventsv1.PublishResponse {
		res, err := events.Publish(ctx, &eventsv1.PublishRequest{Topic: "orders", Data: []byte(data)})
		if err != nil {
			log.Fatal(err)
		}
		return res
	}
	seen := publish("order 1")
	// Continue after an event already handled (a cursor kept from an earlier run, say).
	first := &eventsv1.SubscribeRequest{Topics: []string{"orders"}, Start: eventsv1.StartPosition_START_POSITION_LATEST,
		Cursors: []*eventsv1.TopicCursor{{Topic: "orders", AfterId: seen.GetId()}}}
	var cursors coord.Cursors
	publish("order 2")
	receive(ctx, events, first, &cursors, 1)
	publish("order 3") // while no stream is open
	receive(ctx, events, cursors.Resume(first), &cursors, 1)
	// Output:
	// order 2
	// order 3
}

// receive opens a subscription, prints n events and ends the stream (by cancelling its context).
// Every frame goes to cursors once its events are handled.
func receive(ctx context.Context, events eventsv1.EventsServiceClient, req *eventsv1.SubscribeRequest,
	cursors *coord.Cursors, n int) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := events.Subscribe(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	for n > 0 {
		frame, err := stream.Recv()
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range frame.GetEvents().GetEvents() {
			fmt.Println(string(e.GetData()))
			n--
		}
		cursors.Observe(frame)
	}
}

// TestEventsResumeNoGapNoDuplicate stops a subscription in the middle of a batch of events and resumes
// it twice from its cursors; across the three streams every event arrives once, in order.
func TestEventsResumeNoGapNoDuplicate(t *testing.T) {
	ctx := context.Background()
	events := eventsv1.NewEventsServiceClient(conn)
	topic := name(t)
	var published []string
	publish := func(count int) {
		for i := 0; i < count; i++ {
			res, err := events.Publish(ctx, &eventsv1.PublishRequest{Topic: topic, Data: []byte(fmt.Sprint(len(published)))})
			if err != nil {
				t.Fatal(err)
			}
			published = append(published, res.GetId())
		}
	}
	publish(5)
	first := &eventsv1.SubscribeRequest{Topics: []string{topic}, Start: eventsv1.StartPosition_START_POSITION_EARLIEST,
		HeartbeatInterval: coord.Duration(100 * time.Millisecond)}
	var cursors coord.Cursors
	var received []string
	// take reads events one by one until the run holds upTo of them, then ends the stream: events of a
	// frame past that point are not taken, so the cursor must not move past them.
	take := func(req *eventsv1.SubscribeRequest, upTo int) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := events.Subscribe(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for len(received) < upTo {
			frame, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if frame.GetGap() != nil {
				t.Fatalf("gap: %v", frame.GetGap())
			}
			batch := frame.GetEvents().GetEvents()
			if len(batch) == 0 {
				cursors.Observe(frame) // Subscribed or Progress
				continue
			}
			for _, e := range batch {
				if len(received) == upTo {
					break
				}
				received = append(received, e.GetId())
				cursors.Advance(e.GetTopic(), e.GetId())
			}
		}
	}
	take(first, 3)
	if cursors.After(topic) != published[2] {
		t.Fatalf("cursor after three events: %q, want %q", cursors.After(topic), published[2])
	}
	take(cursors.Resume(first), 5) // the two left of the first batch
	publish(4)
	take(cursors.Resume(first), 9)
	if fmt.Sprint(received) != fmt.Sprint(published) {
		t.Fatalf("received %v\npublished %v", received, published)
	}
}

// TestEventsProgressCheckpoint waits for a Progress heartbeat on an idle stream and checks that the
// cursors it carries are safe to resume from: nothing already received comes again.
func TestEventsProgressCheckpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := eventsv1.NewEventsServiceClient(conn)
	topic := name(t)
	res, err := events.Publish(ctx, &eventsv1.PublishRequest{Topic: topic, Data: []byte("only")})
	if err != nil {
		t.Fatal(err)
	}
	first := &eventsv1.SubscribeRequest{Topics: []string{topic}, Start: eventsv1.StartPosition_START_POSITION_EARLIEST,
		HeartbeatInterval: coord.Duration(100 * time.Millisecond)}
	stream, err := events.Subscribe(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	var cursors coord.Cursors
	sawEvent := false
	for {
		frame, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		sawEvent = sawEvent || len(frame.GetEvents().GetEvents()) > 0
		cursors.Observe(frame)
		if frame.GetProgress() != nil && sawEvent {
			break
		}
	}
	cancel()
	if cursors.After(topic) != res.GetId() {
		t.Fatalf("cursor after a Progress frame: %q, want %q", cursors.After(topic), res.GetId())
	}
	resumed := cursors.Resume(first)
	if len(resumed.GetCursors()) != 1 || resumed.GetCursors()[0].GetAfterId() != res.GetId() ||
		resumed.GetStart() != eventsv1.StartPosition_START_POSITION_EARLIEST {
		t.Fatalf("resume request: %v", resumed)
	}
}
