package realtime

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
)

// TestMessageFrame: the frame built by appending bytes is valid JSON with the message
// object's fields, whatever the sender id holds, and carries data byte for byte.
func TestMessageFrame(t *testing.T) {
	data := []byte(`{"n": 12345678901234567890, "x": 1e400, "s": "<\u2028>"}`)
	for _, sender := range []string{"alice", `we"ird\id`, "ünï\x01cødé", "<script>&", string([]byte{0xff, 'a'})} {
		h := nats.Header{}
		h.Set(messagev1.HeaderMessageID, "01JBMSG0000000000000000001")
		h.Set(messagev1.HeaderTimestamp, "2025-11-26T00:00:00.123Z")
		h.Set(messagev1.HeaderSenderType, messagev1.SenderUser)
		h.Set(messagev1.HeaderSenderID, sender)
		f, ok := messageFrame("abcdef00-0000-4000-8000-000000000001", "01JBCHAN000000000000000001", 42, h, data)
		if !ok {
			t.Fatal("frame refused")
		}
		var got realtimev1.ServerFrame
		if err := json.Unmarshal(f, &got); err != nil {
			t.Fatalf("sender %q: frame is not JSON: %v\n%s", sender, err, f)
		}
		m := got.Message()
		if got.Type != realtimev1.TypeMessage || m.Seq != 42 || m.MessageID != "01JBMSG0000000000000000001" ||
			m.ChannelID != "01JBCHAN000000000000000001" || m.TenantID != "abcdef00-0000-4000-8000-000000000001" ||
			!m.Timestamp.Equal(time.Date(2025, 11, 26, 0, 0, 0, 123e6, time.UTC)) || m.Sender.Type != messagev1.SenderUser {
			t.Fatalf("frame %s", f)
		}
		if !bytes.HasSuffix(f, []byte(`,"data":`+string(data)+`}`)) {
			t.Fatalf("data not byte for byte: %s", f)
		}
		if want := strings.ToValidUTF8(sender, "\uFFFD"); m.Sender.ID != want {
			t.Fatalf("sender id %q, want %q", m.Sender.ID, want)
		}
	}
	// Not what the gateway stores: never delivered.
	for _, bad := range []struct {
		h    nats.Header
		data string
	}{
		{nats.Header{}, `{}`},
		{nats.Header{messagev1.HeaderMessageID: {"x"}, messagev1.HeaderTimestamp: {"t"}, messagev1.HeaderSenderType: {"user"}}, `[1]`},
		{nats.Header{messagev1.HeaderMessageID: {"x"}, messagev1.HeaderTimestamp: {"t"}, messagev1.HeaderSenderType: {"user"}}, ``},
	} {
		if _, ok := messageFrame("t", "c", 1, bad.h, []byte(bad.data)); ok {
			t.Fatalf("accepted %v %q", bad.h, bad.data)
		}
	}
}

// TestRateWindow: the limit per second, rate_limited answers, and strikes for seconds
// over the limit in a row.
func TestRateWindow(t *testing.T) {
	var r rateWindow
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _, _ := r.take(t0, 3, 3); !ok {
			t.Fatalf("frame %d refused", i)
		}
	}
	ok, answer, kill := r.take(t0, 3, 3)
	if ok || !answer || kill {
		t.Fatalf("4th frame: %v %v %v", ok, answer, kill)
	}
	// Seconds 2 and 3 over the limit too: the third strike kills.
	for s := 1; s <= 2; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		for range 3 {
			r.take(now, 3, 3)
		}
		ok, _, kill = r.take(now, 3, 3)
		if ok || kill != (s == 2) {
			t.Fatalf("second %d: ok %v kill %v", s, ok, kill)
		}
	}
	// A quiet second in between resets the strikes.
	var q rateWindow
	for _, s := range []int{0, 2, 4} {
		now := t0.Add(time.Duration(s) * time.Second)
		for range 4 {
			if _, _, kill := q.take(now, 3, 3); kill {
				t.Fatalf("killed at second %d after quiet seconds", s)
			}
		}
	}
}

// TestFrameWriter: a batch of frames of every length class comes out as RFC 6455 text
// frames (FIN, opcode 1, unmasked, 7/16/64-bit lengths), in order, payloads intact.
func TestFrameWriter(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 200_000}
	var w frameWriter
	var want [][]byte
	for i, n := range sizes {
		p := bytes.Repeat([]byte{byte('a' + i)}, n)
		want = append(want, p)
		w.add(p)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	errc := make(chan error, 1)
	go func() { errc <- w.writeTo(a, time.Now().Add(10*time.Second)) }()
	r := bufio.NewReader(b)
	for i, p := range want {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			t.Fatal(err)
		}
		if h[0] != 0x81 || h[1]&0x80 != 0 {
			t.Fatalf("frame %d: header % x", i, h)
		}
		n := uint64(h[1])
		switch n {
		case 126:
			var l [2]byte
			_, _ = io.ReadFull(r, l[:])
			n = uint64(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			_, _ = io.ReadFull(r, l[:])
			n = binary.BigEndian.Uint64(l[:])
		}
		got := make([]byte, n)
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(got), len(p))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if w.frames != len(sizes) {
		t.Fatalf("%d frames counted", w.frames)
	}
}
