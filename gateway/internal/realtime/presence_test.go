package realtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/presencev1"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/gateway/internal/realtime"
)

// presenceOf reads a session's presence key: its value, or ok false when there is none.
func (e *env) presenceOf(key string) (presencev1.Session, bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	entry, err := e.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return presencev1.Session{}, false
	}
	if err != nil {
		e.t.Fatalf("kv get %s: %v", key, err)
	}
	var s presencev1.Session
	if err := json.Unmarshal(entry.Value(), &s); err != nil {
		e.t.Fatalf("presence value %q: %v", entry.Value(), err)
	}
	return s, true
}

// TestPresenceKeys: an agent session has a key (online on open), heartbeats set its
// status, and closing deletes it; user sessions have none.
func TestPresenceKeys(t *testing.T) {
	e := newEnv(t, realtime.Config{GatewayID: "gw-1"})
	tenant, _ := e.tenant("alice", plans.Pro)
	agent := newID()
	c, f := e.connect(bearer(e.agentToken(tenant, agent, newID(), time.Hour)))
	key := presencev1.Key(tenant, agent, f.SessionID)
	v, ok := e.presenceOf(key)
	if !ok || v.Status != presencev1.StatusOnline || v.Gateway != "gw-1" || v.Since.IsZero() {
		t.Fatalf("presence on open: %+v %v", v, ok)
	}
	for _, status := range []string{realtimev1.StatusBusy, realtimev1.StatusIdle} {
		c.send(realtimev1.Heartbeat(status))
		eventually(t, "status "+status, func() bool { v, _ := e.presenceOf(key); return v.Status == status })
	}
	// A second session of the same agent has its own key.
	c2, f2 := e.connect(bearer(e.agentToken(tenant, agent, newID(), time.Hour)))
	key2 := presencev1.Key(tenant, agent, f2.SessionID)
	if _, ok := e.presenceOf(key2); !ok || key2 == key {
		t.Fatal("second session without its own key")
	}
	if err := c.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the key is deleted on close", func() bool { _, ok := e.presenceOf(key); return !ok })
	if _, ok := e.presenceOf(key2); !ok {
		t.Fatal("the other session's key went too")
	}
	_ = c2

	// A user session writes nothing.
	_, uf := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	keys, err := e.kv.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		if _, _, sess, _ := presencev1.ParseKey(k); sess == uf.SessionID {
			t.Fatalf("user session has a presence key %s", k)
		}
	}
}

// TestPresenceExpiry: a key that is not refreshed expires (the session looks dead to
// the agent service); refreshes while frames arrive keep it.
func TestPresenceExpiry(t *testing.T) {
	t.Run("no refresh", func(t *testing.T) {
		e := newEnv(t, realtime.Config{PresenceTTL: time.Second, PresenceRefresh: time.Hour, PingEvery: time.Hour})
		tenant, _ := e.tenant("alice", plans.Pro)
		agent := newID()
		_, f := e.connect(bearer(e.agentToken(tenant, agent, newID(), time.Hour)))
		key := presencev1.Key(tenant, agent, f.SessionID)
		if _, ok := e.presenceOf(key); !ok {
			t.Fatal("no key on open")
		}
		eventually(t, "the key expires", func() bool { _, ok := e.presenceOf(key); return !ok })
	})
	t.Run("refreshed by frames", func(t *testing.T) {
		e := newEnv(t, realtime.Config{PresenceTTL: 2 * time.Second, PresenceRefresh: 200 * time.Millisecond, PingEvery: time.Hour})
		tenant, _ := e.tenant("alice", plans.Pro)
		agent := newID()
		c, f := e.connect(bearer(e.agentToken(tenant, agent, newID(), time.Hour)))
		key := presencev1.Key(tenant, agent, f.SessionID)
		end := time.Now().Add(5 * time.Second)
		for time.Now().Before(end) {
			c.send(realtimev1.Ping(""))
			c.expect(realtimev1.TypePong)
			if _, ok := e.presenceOf(key); !ok {
				t.Fatal("the key expired while frames kept arriving")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
