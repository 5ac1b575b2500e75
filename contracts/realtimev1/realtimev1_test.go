package realtimev1_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
)

// TestClientFrames: the constructors produce the frames of SPEC §4.6.
func TestClientFrames(t *testing.T) {
	for _, tc := range []struct {
		f    realtimev1.ClientFrame
		want string
	}{
		{realtimev1.Subscribe("1", "C"), `{"type":"subscribe","id":"1","channel_id":"C"}`},
		{realtimev1.SubscribeSince("2", "C", 0), `{"type":"subscribe","id":"2","channel_id":"C","since_seq":0}`},
		{realtimev1.Unsubscribe("", "C"), `{"type":"unsubscribe","channel_id":"C"}`},
		{realtimev1.Publish("3", "C", json.RawMessage(`{"a":1}`)), `{"type":"publish","id":"3","channel_id":"C","data":{"a":1}}`},
		{realtimev1.Heartbeat(realtimev1.StatusBusy), `{"type":"heartbeat","status":"busy"}`},
		{realtimev1.Ping("p"), `{"type":"ping","id":"p"}`},
		{realtimev1.SubscribeEvents(""), `{"type":"subscribe_events"}`},
	} {
		b, err := json.Marshal(tc.f)
		if err != nil || string(b) != tc.want {
			t.Errorf("%s, want %s (%v)", b, tc.want, err)
		}
	}
}

// TestServerFrames: every server frame decodes into ServerFrame; a message frame is the
// message object's fields beside "type".
func TestServerFrames(t *testing.T) {
	ts := time.Date(2025, 11, 26, 1, 2, 3, 4e6, time.UTC)
	msg := messagev1.Message{MessageID: "M", Seq: 7, ChannelID: "C", TenantID: "T", Timestamp: ts,
		Sender: messagev1.Sender{Type: messagev1.SenderAgent, ID: "A"}, Data: json.RawMessage(`{"x":1}`)}
	b, _ := json.Marshal(realtimev1.Message{Type: realtimev1.TypeMessage, Message: msg})
	var f realtimev1.ServerFrame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	got := f.Message()
	if f.Type != realtimev1.TypeMessage || got.MessageID != "M" || got.Seq != 7 || got.ChannelID != "C" || got.TenantID != "T" ||
		!got.Timestamp.Equal(ts) || got.Sender != msg.Sender || string(got.Data) != `{"x":1}` {
		t.Fatalf("%s decoded as %+v", b, got)
	}
	var object map[string]any
	_ = json.Unmarshal(b, &object)
	for _, k := range []string{"type", "message_id", "seq", "channel_id", "tenant_id", "timestamp", "sender", "data"} {
		if _, ok := object[k]; !ok {
			t.Errorf("message frame lacks %q: %s", k, b)
		}
	}

	first := uint64(5)
	for _, v := range []any{
		realtimev1.Connected{Type: realtimev1.TypeConnected, SessionID: "S", TenantID: "T", AgentID: "A"},
		realtimev1.Subscribed{Type: realtimev1.TypeSubscribed, ID: "1", ChannelID: "C"},
		realtimev1.Unsubscribed{Type: realtimev1.TypeUnsubscribed, ChannelID: "C", Reason: realtimev1.ReasonChannelDeleted},
		realtimev1.Ack{Type: realtimev1.TypeAck, ID: "1", MessageID: "M", Seq: 9, Timestamp: ts},
		realtimev1.Error{Type: realtimev1.TypeError, Code: realtimev1.CodeHistoryTruncated, Detail: "d", FirstSeq: &first},
		realtimev1.Pong{Type: realtimev1.TypePong, ID: "p"},
		realtimev1.Event{Type: realtimev1.TypeEvent, Event: eventsv1.Event{Type: "agents.status", TenantID: "T", Timestamp: ts, Data: json.RawMessage(`{}`)}},
	} {
		b, _ := json.Marshal(v)
		var f realtimev1.ServerFrame
		if err := json.Unmarshal(b, &f); err != nil || f.Type == "" {
			t.Fatalf("%s: %v", b, err)
		}
		switch f.Type {
		case realtimev1.TypeError:
			if f.FirstSeq == nil || *f.FirstSeq != 5 || f.Code != realtimev1.CodeHistoryTruncated {
				t.Fatalf("%s decoded as %+v", b, f)
			}
		case realtimev1.TypeEvent:
			if f.Event == nil || f.Event.Type != "agents.status" {
				t.Fatalf("%s decoded as %+v", b, f)
			}
		case realtimev1.TypeUnsubscribed:
			if f.Reason != realtimev1.ReasonChannelDeleted {
				t.Fatalf("%s decoded as %+v", b, f)
			}
		}
	}
}
