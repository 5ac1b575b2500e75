// Package streamtest publishes channel messages into the MESSAGES stream the way the
// gateway does (messagev1 subject and headers, Nats-TTL from the channel's
// max_age_seconds), so the channel service's tests read what production stores.
package streamtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/artcafe-ai/pubsub/contracts/messagev1"
)

// Message is what one publish stored.
type Message struct {
	messagev1.Published
	Sender messagev1.Sender
	Data   string
}

// Options of a publish.
type Options struct {
	// MaxAge is the channel's history.max_age_seconds, sent as Nats-TTL (0: none).
	MaxAge time.Duration
	// Sender defaults to the user "u-test".
	Sender messagev1.Sender
}

// Publish stores data (a JSON object's text) in channelID of tenantID.
func Publish(t testing.TB, js jetstream.JetStream, tenantID, channelID, data string, o Options) Message {
	t.Helper()
	if o.Sender == (messagev1.Sender{}) {
		o.Sender = messagev1.Sender{Type: messagev1.SenderUser, ID: "u-test"}
	}
	now := time.Now().UTC()
	m := Message{Published: messagev1.Published{MessageID: ulid.Make().String(), Timestamp: now.Truncate(time.Millisecond)}, Sender: o.Sender, Data: data}
	msg := nats.NewMsg(messagev1.Subject(tenantID, channelID))
	msg.Data = []byte(data)
	msg.Header.Set(messagev1.HeaderMessageID, m.MessageID)
	msg.Header.Set(messagev1.HeaderSenderType, o.Sender.Type)
	msg.Header.Set(messagev1.HeaderSenderID, o.Sender.ID)
	msg.Header.Set(messagev1.HeaderTimestamp, now.Format(messagev1.TimestampFormat))
	var opts []jetstream.PublishOpt
	if o.MaxAge > 0 {
		opts = append(opts, jetstream.WithMsgTTL(o.MaxAge))
	}
	ack, err := js.PublishMsg(context.Background(), msg, opts...)
	if err != nil {
		t.Fatalf("publishing to %s: %v", msg.Subject, err)
	}
	m.Seq = ack.Sequence
	return m
}
