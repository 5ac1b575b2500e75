// Package cascadetest drives and observes the tenant-deletion cascade in tests: it
// publishes deletions as the tenant service does and waits until a service's cascade
// consumer has handled them.
package cascadetest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
)

// DeleteTenant publishes tenantID's deletion as the tenant service does: durable, on the
// platform stream, with the message id that makes a repeat a duplicate.
func DeleteTenant(t testing.TB, js jetstream.JetStream, tenantID string) {
	t.Helper()
	b, err := json.Marshal(tenantv1.TenantDeleted{TenantID: tenantID, DeletedAt: time.Now().UTC(), RequestID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), tenantv1.SubjectTenantDeleted, b, jetstream.WithMsgID(tenantv1.DeletedMsgID(tenantID))); err != nil {
		t.Fatal(err)
	}
}

// Settled waits until service's cascade consumer has acknowledged (or dropped) every
// tenant deletion on the platform stream, up to the last one published; there must be
// at least one.
func Settled(t testing.TB, js jetstream.JetStream, service string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		done, err := settled(ctx, js, service)
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s cascade did not acknowledge every tenant deletion (%v)", service, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settled compares the consumer's ack floor with the last deletion on the stream: the
// consumer's pending counts lag behind new messages, its ack floor does not.
func settled(ctx context.Context, js jetstream.JetStream, service string) (bool, error) {
	s, err := js.Stream(ctx, platform.Stream)
	if err != nil {
		return false, err
	}
	last, err := s.GetLastMsgForSubject(ctx, tenantv1.SubjectTenantDeleted)
	if err != nil {
		return false, err
	}
	c, err := s.Consumer(ctx, cascade.ConsumerName(service))
	if err != nil {
		return false, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return false, err
	}
	if info.AckFloor.Stream < last.Sequence || info.NumAckPending != 0 {
		return false, errors.New("events not acknowledged yet")
	}
	return true, nil
}
