package realtime

import (
	"encoding/json"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
)

// headerSequence is the stream sequence a republished (live) message carries.
const headerSequence = jetstream.SequenceHeader

func parseSeq(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) }

// messageFrame builds the message frame of a stored message (messagev1.AppendJSON with
// the frame's type). It is built once per message and shared, read-only, by every session
// it goes to. ok is false for a message the gateway did not store (never delivered).
func messageFrame(tenantID, channelID string, seq uint64, h nats.Header, data []byte) ([]byte, bool) {
	return messagev1.AppendJSON(make([]byte, 0, len(data)+256), true, tenantID, channelID, seq, h, data)
}

// eventFrame wraps a tenant event (an eventsv1.Event JSON object) in an event frame.
func eventFrame(event []byte) []byte {
	b := make([]byte, 0, len(event)+26)
	b = append(b, `{"type":"event","event":`...)
	b = append(b, event...)
	return append(b, '}')
}

// frame encodes a non-message server frame (rare: replies, errors).
func frame(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // the frame types are plain structs: cannot happen
		return []byte(`{"type":"error","code":"internal","detail":"internal error"}`)
	}
	return b
}

func errorFrame(id, channelID, code, detail string) []byte {
	return frame(realtimev1.Error{Type: realtimev1.TypeError, Code: code, Detail: detail, ID: id, ChannelID: channelID})
}
