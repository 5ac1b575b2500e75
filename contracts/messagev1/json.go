package messagev1

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// TimestampFormat is the form of Artcafe-Timestamp and of every message timestamp:
// RFC 3339, UTC, milliseconds.
const TimestampFormat = "2006-01-02T15:04:05.000Z07:00"

// headerStreamTime is JetStream's own store time on a republished or directly read
// message (a fallback when Artcafe-Timestamp is missing).
const headerStreamTime = "Nats-Time-Stamp"

// AppendJSON appends the message object of a stored message to dst: its sequence, the
// headers the gateway set, and the data byte for byte (never decoded, so numbers and
// spacing stay as published). With frame, the object begins with "type":"message" — the
// WebSocket frame. It is the one encoder of the message object, used by history reads
// and live delivery alike. ok is false for a message without the gateway's headers or
// whose data is not a JSON object; such a message is never delivered.
func AppendJSON(dst []byte, frame bool, tenantID, channelID string, seq uint64, h map[string][]string, data []byte) ([]byte, bool) {
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	id, st := get(HeaderMessageID), get(HeaderSenderType)
	data = trimSpace(data)
	if id == "" || st == "" || len(data) < 2 || data[0] != '{' || data[len(data)-1] != '}' {
		return dst, false
	}
	ts := get(HeaderTimestamp)
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t, err := time.Parse(time.RFC3339Nano, get(headerStreamTime))
		if err != nil {
			t = time.Unix(0, 0)
		}
		ts = t.UTC().Format(TimestampFormat)
	}
	if frame {
		dst = append(dst, `{"type":"message","message_id":`...)
	} else {
		dst = append(dst, `{"message_id":`...)
	}
	dst = appendString(dst, id)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"channel_id":`...)
	dst = appendString(dst, channelID)
	dst = append(dst, `,"tenant_id":`...)
	dst = appendString(dst, tenantID)
	dst = append(dst, `,"timestamp":`...)
	dst = appendString(dst, ts)
	dst = append(dst, `,"sender":{"type":`...)
	dst = appendString(dst, st)
	dst = append(dst, `,"id":`...)
	dst = appendString(dst, get(HeaderSenderID))
	dst = append(dst, `},"data":`...)
	dst = append(dst, data...)
	return append(dst, '}'), true
}

func trimSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// appendString appends s as a JSON string. Ids and timestamps take the fast path; a
// user id (any text) may need escaping.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
