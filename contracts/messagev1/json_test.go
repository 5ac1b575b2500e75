package messagev1_test

import (
	"encoding/json"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/messagev1"
)

func TestAppendJSON(t *testing.T) {
	h := map[string][]string{
		messagev1.HeaderMessageID:  {"01JBMSG0000000000000000001"},
		messagev1.HeaderSenderType: {"user"},
		messagev1.HeaderSenderID:   {`we"ird<id>`},
		messagev1.HeaderTimestamp:  {"2026-11-25T10:00:00.123Z"},
	}
	data := []byte(` {"n": 12345678901234567890, "f": 1e400, "s": "<b>"} `)
	for _, frame := range []bool{false, true} {
		b, ok := messagev1.AppendJSON(nil, frame, "t-1", "C1", 42, h, data)
		if !ok {
			t.Fatal("a well-formed message was refused")
		}
		var m struct {
			Type string `json:"type"`
			messagev1.Message
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("not JSON: %s: %v", b, err)
		}
		if m.MessageID != "01JBMSG0000000000000000001" || m.Seq != 42 || m.ChannelID != "C1" || m.TenantID != "t-1" ||
			m.Sender.Type != "user" || m.Sender.ID != `we"ird<id>` || m.Timestamp.Format(messagev1.TimestampFormat) != "2026-11-25T10:00:00.123Z" {
			t.Errorf("fields: %+v", m)
		}
		if string(m.Data) != `{"n": 12345678901234567890, "f": 1e400, "s": "<b>"}` {
			t.Errorf("data changed: %s", m.Data)
		}
		if (m.Type == "message") != frame {
			t.Errorf("frame %v: type %q", frame, m.Type)
		}
	}
	// The stream's own time stands in for a missing timestamp.
	h2 := map[string][]string{messagev1.HeaderMessageID: {"X"}, messagev1.HeaderSenderType: {"agent"},
		"Nats-Time-Stamp": {"2026-11-25T10:00:01.5Z"}}
	if b, ok := messagev1.AppendJSON(nil, false, "t", "c", 1, h2, []byte(`{}`)); !ok || !json.Valid(b) {
		t.Fatalf("fallback time: %s %v", b, ok)
	}
	for _, bad := range []struct {
		h    map[string][]string
		data string
	}{{h, `[]`}, {h, `"x"`}, {h, ``}, {map[string][]string{}, `{}`}} {
		if _, ok := messagev1.AppendJSON(nil, false, "t", "c", 1, bad.h, []byte(bad.data)); ok {
			t.Errorf("accepted %v %q", bad.h, bad.data)
		}
	}
}
