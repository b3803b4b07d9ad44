package coord

import (
	"sort"
	"strconv"
	"strings"

	eventsv1 "github.com/coord-dev/coord/client/go/gen/coord/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Cursors keeps where an events subscription stands, per topic, so that a new Subscribe call resumes
// it with no event missed and none delivered twice: the rules of SubscribeRequest.cursors in
// protos/coord/events/v1/events.proto. The zero value is ready to use; it is not safe for concurrent
// use.
//
// Feed it every frame of the stream with [Cursors.Observe] once the frame's events are handled (or
// [Cursors.Advance] event by event), then build the next call's request with [Cursors.Resume].
type Cursors struct {
	after    map[string]string
	openTime *timestamppb.Timestamp
}

// Observe applies one frame: a Subscribed frame's start positions and the stream's first open_time,
// an Events frame's event ids, a Progress frame's checkpoints. A Gap changes nothing: delivery goes
// on after it and the next event moves the cursor.
func (c *Cursors) Observe(frame *eventsv1.SubscribeResponse) {
	switch f := frame.GetFrame().(type) {
	case *eventsv1.SubscribeResponse_Subscribed:
		if c.openTime == nil {
			c.openTime = f.Subscribed.GetOpenTime()
		}
		for _, start := range f.Subscribed.GetStarts() {
			if _, known := c.after[start.GetTopic()]; !known {
				c.set(start.GetTopic(), start.GetAfterId())
			}
		}
	case *eventsv1.SubscribeResponse_Events:
		for _, e := range f.Events.GetEvents() {
			c.Advance(e.GetTopic(), e.GetId())
		}
	case *eventsv1.SubscribeResponse_Progress:
		for _, cursor := range f.Progress.GetCursors() {
			c.Advance(cursor.GetTopic(), cursor.GetAfterId())
		}
	}
}

// Advance moves topic's cursor to id, unless it already stands at or after id. An empty id (a
// volatile event's) is no position and changes nothing.
func (c *Cursors) Advance(topic, id string) {
	if id == "" {
		return
	}
	if current, known := c.after[topic]; known && !idBefore(current, id) {
		return
	}
	c.set(topic, id)
}

// After returns topic's cursor: the id delivery continues after ("" when the topic is unknown).
func (c *Cursors) After(topic string) string {
	return c.after[topic]
}

// Resume returns a copy of first, the request that opened the subscription, that continues where
// the cursors stand: a cursor for every topic seen, and for a subscription that started at
// START_POSITION_LATEST, start AT_TIME with the first stream's open_time, so that a topic first
// matched by a pattern while no stream was open is read from then on. A volatile subscription has
// no history to resume from: its request comes back unchanged.
func (c *Cursors) Resume(first *eventsv1.SubscribeRequest) *eventsv1.SubscribeRequest {
	req := proto.Clone(first).(*eventsv1.SubscribeRequest)
	if first.GetVolatile() {
		return req
	}
	topics := make([]string, 0, len(c.after))
	for topic := range c.after {
		topics = append(topics, topic)
	}
	sort.Strings(topics)
	req.Cursors = req.Cursors[:0]
	for _, topic := range topics {
		req.Cursors = append(req.Cursors, &eventsv1.TopicCursor{Topic: topic, AfterId: c.after[topic]})
	}
	if first.GetStart() == eventsv1.StartPosition_START_POSITION_LATEST && c.openTime != nil {
		req.Start = eventsv1.StartPosition_START_POSITION_AT_TIME
		req.StartTime = c.openTime
	}
	return req
}

func (c *Cursors) set(topic, id string) {
	if c.after == nil {
		c.after = make(map[string]string)
	}
	c.after[topic] = id
}

// idBefore orders event ids "<ms>-<seq>" ("<ms>" alone means "<ms>-0") by their two numbers.
func idBefore(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	return am < bm || (am == bm && as < bs)
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}
