package natsapi_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/sshkeytest"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

const pubKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl agent@host"

func TestCreateWithPublicKey(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := member(tenantA, plans.Pro)
	out := f.create(t, ctx, agentv1.CreateBody{Name: "signer", PublicKey: pubKey})
	if out.Key == nil || out.Key.AgentID == nil || *out.Key.AgentID != out.Agent.ID || out.Key.KeyType != sshkeyv1.TypeAgent ||
		out.Key.Fingerprint != sshkeytest.Fingerprint(pubKey) || out.Key.TenantID != tenantA {
		t.Fatalf("create with key: %+v", out.Key)
	}
	if got := f.keys.KeysOf(tenantA, out.Agent.ID); len(got) != 1 || got[0].Name != "signer" {
		t.Fatalf("keys of the agent: %+v", got)
	}
	// The check came first, and both calls carried the caller's identity and plan.
	checks, creates := f.keys.Calls(sshkeyv1.OpCheckPublicKey), f.keys.Calls(sshkeyv1.OpCreateForAgent)
	if len(checks) != 1 || len(creates) != 1 || creates[0].AgentID != out.Agent.ID {
		t.Fatalf("calls: check %+v create %+v", checks, creates)
	}
	for _, c := range append(checks, creates...) {
		if c.Identity.TenantID != tenantA || c.Identity.Plan != plans.Pro || c.Identity.PrincipalID != "u-member" || c.Identity.RequestID != "req-test" {
			t.Fatalf("identity not propagated: %+v", c.Identity)
		}
	}
}

// A public key that cannot be registered leaves no agent behind, whether the check
// refuses it or the registration after the agent was written fails; the sshkey
// service's answer comes back as it was.
func TestCreateKeyFailuresLeaveNothing(t *testing.T) {
	t.Parallel()
	f := start(t)
	failures := map[string]*natsrpc.Error{
		"422": natsrpc.Invalid(natsrpc.FieldError{Field: "public_key", Message: "RSA keys need at least 2048 bits"}),
		"409": natsrpc.Conflict("this key is already registered in the tenant"),
		"402": natsrpc.PlanLimit("ssh key limit reached: 5 of 5 on the free plan"),
		"503": natsrpc.Unavailable("the sshkey service cannot reach its storage"),
	}
	check := func(t *testing.T, ctx context.Context, body agentv1.CreateBody, want *natsrpc.Error) {
		t.Helper()
		e := f.fails(t, ctx, agentv1.OpCreate, agentv1.CreateRequest{Agent: body}, want.Status, want.Code)
		if e.Detail != want.Detail || len(e.Errors) != len(want.Errors) {
			t.Fatalf("error changed on the way: %+v, want %+v", e, want)
		}
		var list agentv1.ListResponse
		f.call(t, ctx, agentv1.OpList, agentv1.ListRequest{}, &list)
		if len(list.Agents) != 0 {
			t.Fatalf("an agent remains: %+v", list.Agents)
		}
		if s := f.summary(t, ctx); s != (agentv1.StatusSummary{}) {
			t.Fatalf("counters not back: %+v", s)
		}
		page, err := f.table.Query(context.Background(), "T#"+natsrpc.IdentityFrom(ctx).TenantID, store.QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			if !strings.HasPrefix(it.SK, "N#") {
				t.Fatalf("item left behind: %s", it.SK)
			}
		}
	}

	for name, e := range failures {
		t.Run("check "+name, func(t *testing.T) {
			ctx := user(tenantA)
			f.keys.Fail(sshkeyv1.OpCheckPublicKey, e)
			defer f.keys.Fail(sshkeyv1.OpCheckPublicKey, nil)
			before := len(f.keys.Calls(sshkeyv1.OpCreateForAgent))
			check(t, ctx, agentv1.CreateBody{Name: "a", PublicKey: pubKey}, e)
			if len(f.keys.Calls(sshkeyv1.OpCreateForAgent)) != before {
				t.Fatal("a key was registered although the check failed")
			}
		})
	}
	// Run one after the other: they share the fake's failure switch.
	for name, e := range failures {
		t.Run("register "+name, func(t *testing.T) {
			ctx := user(tenantB)
			f.keys.Fail(sshkeyv1.OpCreateForAgent, e)
			defer f.keys.Fail(sshkeyv1.OpCreateForAgent, nil)
			before := len(f.keys.Calls(sshkeyv1.OpDeleteForAgent))
			check(t, ctx, agentv1.CreateBody{Name: "a", PublicKey: pubKey}, e)
			// An unclear failure may have stored the key: it is deleted too.
			deletes := f.keys.Calls(sshkeyv1.OpDeleteForAgent)[before:]
			if (e.Status >= 500) != (len(deletes) == 1) {
				t.Fatalf("%d delete_for_agent calls after a %d", len(deletes), e.Status)
			}
		})
	}

	// The natural failures of the real service's rules, end to end through the fake.
	t.Run("private key", func(t *testing.T) {
		ctx := user(tenantA)
		check(t, ctx, agentv1.CreateBody{Name: "a", PublicKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"},
			natsrpc.NewError(http.StatusUnprocessableEntity, natsrpc.CodePrivateKeyRejected, "a private key was pasted"))
	})
	t.Run("duplicate key", func(t *testing.T) {
		ctx := user(tenantA)
		first := f.create(t, ctx, agentv1.CreateBody{Name: "first", PublicKey: pubKey})
		e := f.fails(t, ctx, agentv1.OpCreate, agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "second", PublicKey: pubKey}}, http.StatusConflict, natsrpc.CodeConflict)
		_ = e
		if s := f.summary(t, ctx); s.Total != 1 {
			t.Fatalf("counter after the refused duplicate: %+v", s)
		}
		f.call(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: first.Agent.ID}, nil)
	})
}

// 20 creates racing for the last slot of the free plan: exactly one wins, the others
// get 402 naming the count, limit and plan, and the counter stays right.
func TestConcurrentCreatesAtTheLimit(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := member(tenantA, plans.Free)
	max := int(*mustPlan(t, plans.Free).Limits.MaxAgents)
	for range max - 1 {
		f.create(t, ctx, agentv1.CreateBody{Name: "early"})
	}
	var (
		wg   sync.WaitGroup
		errs = make([]error, 20)
	)
	for i := range errs {
		wg.Go(func() {
			errs[i] = f.client.Call(ctx, agentv1.Subject(agentv1.OpCreate), agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "racer"}}, nil)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		e, ok := natsrpc.AsError(err)
		if !ok || e.Status != http.StatusPaymentRequired || e.Code != natsrpc.CodePlanLimitExceeded ||
			e.Detail != "agent limit reached: 3 of 3 on the free plan" {
			t.Fatalf("a loser got %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creates won the last slot, want 1", won)
	}
	all := f.listAll(t, ctx, agentv1.ListRequest{})
	if len(all) != max {
		t.Fatalf("%d agents exist, want %d", len(all), max)
	}
	if s := f.summary(t, ctx); s.Total != int64(max) || s.Offline != int64(max) {
		t.Fatalf("summary: %+v", s)
	}
	c, err := f.repo.Counts(context.Background(), tenantA)
	if err != nil || c.Total != int64(max) {
		t.Fatalf("counter %d (%v), want %d", c.Total, err, max)
	}

	// A downgrade deletes nothing and the detail names the real count.
	basicFull := member(tenantA, plans.Basic)
	f.create(t, basicFull, agentv1.CreateBody{Name: "fourth"})
	f.create(t, basicFull, agentv1.CreateBody{Name: "fifth"})
	e := f.fails(t, ctx, agentv1.OpCreate, agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "x"}}, http.StatusPaymentRequired, natsrpc.CodePlanLimitExceeded)
	if e.Detail != "agent limit reached: 5 of 3 on the free plan" {
		t.Fatalf("detail after a downgrade: %q", e.Detail)
	}
	if all := f.listAll(t, ctx, agentv1.ListRequest{}); len(all) != 5 {
		t.Fatalf("%d agents after the downgrade, want 5", len(all))
	}
	// Deleting frees a slot of the current plan only when under its limit.
	f.call(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: all[0].ID}, nil)
	f.fails(t, ctx, agentv1.OpCreate, agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "x"}}, http.StatusPaymentRequired, natsrpc.CodePlanLimitExceeded)
	f.create(t, basicFull, agentv1.CreateBody{Name: "back to five"})
}

func mustPlan(t *testing.T, id string) plans.Plan {
	t.Helper()
	p, ok := plans.Get(id)
	if !ok {
		t.Fatalf("no plan %s", id)
	}
	return p
}
