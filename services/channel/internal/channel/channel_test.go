package channel

import (
	"errors"
	"fmt"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
)

func TestResolveHistory(t *testing.T) {
	free, _ := plans.Get(plans.Free)
	ent, _ := plans.Get(plans.Enterprise)
	h := func(msgs, age int64) *channelv1.History {
		return &channelv1.History{MaxMessages: msgs, MaxAgeSeconds: age}
	}
	for _, tc := range []struct {
		plan   plans.Plan
		in     *channelv1.History
		want   channelv1.History
		fields []string
	}{
		{free, nil, *h(1_000, 86_400), nil},
		{free, h(0, 0), *h(1_000, 86_400), nil},
		{free, h(10, 0), *h(10, 86_400), nil},
		{free, h(0, 60), *h(1_000, 60), nil},
		{free, h(1_000, 86_400), *h(1_000, 86_400), nil},
		{free, h(1_001, 1), channelv1.History{}, []string{"history.max_messages"}},
		{free, h(1, 86_401), channelv1.History{}, []string{"history.max_age_seconds"}},
		{free, h(-1, 86_401), channelv1.History{}, []string{"history.max_messages", "history.max_age_seconds"}},
		{ent, nil, channelv1.History{}, nil},
		{ent, h(1<<40, 1<<40), *h(1<<40, 1<<40), nil},
	} {
		got, err := resolveHistory(tc.plan, tc.in)
		var ve *ValidationError
		switch {
		case tc.fields == nil && (err != nil || got != tc.want):
			t.Errorf("%s %+v: %+v, %v; want %+v", tc.plan.ID, tc.in, got, err, tc.want)
		case tc.fields != nil && !errors.As(err, &ve):
			t.Errorf("%s %+v: %v, want a validation error", tc.plan.ID, tc.in, err)
		case tc.fields != nil:
			var fields []string
			for _, f := range ve.Fields {
				fields = append(fields, f.Field)
			}
			if fmt.Sprint(fields) != fmt.Sprint(tc.fields) || !errors.Is(err, ErrInvalid) {
				t.Errorf("%s %+v: fields %v, want %v", tc.plan.ID, tc.in, fields, tc.fields)
			}
		}
	}
}

func TestMay(t *testing.T) {
	for _, tc := range []struct {
		actor        Actor
		read, manage bool
	}{
		{Actor{Kind: natsrpc.KindUser, Role: natsrpc.RoleOwner}, true, true},
		{Actor{Kind: natsrpc.KindUser, Role: natsrpc.RoleAdmin}, true, true},
		{Actor{Kind: natsrpc.KindUser, Role: natsrpc.RoleMember}, true, true},
		{Actor{Kind: natsrpc.KindUser, Role: natsrpc.RoleViewer}, true, false},
		{Actor{Kind: natsrpc.KindUser}, false, false},
		{Actor{Kind: natsrpc.KindAPIKey, Role: natsrpc.RoleAdmin}, true, true},
		{Actor{Kind: natsrpc.KindAgent, ID: "01J00000000000000000000000"}, true, false},
		{Actor{Kind: natsrpc.KindSystem}, true, true},
		{Actor{Kind: "martian", Role: natsrpc.RoleOwner}, false, false},
	} {
		if got := tc.actor.may(accessRead) == nil; got != tc.read {
			t.Errorf("%+v may read: %v", tc.actor, got)
		}
		err := tc.actor.may(accessManage)
		if got := err == nil; got != tc.manage {
			t.Errorf("%+v may manage: %v", tc.actor, got)
		}
		if err != nil && !errors.Is(err, ErrForbidden) {
			t.Errorf("%+v: %v is not ErrForbidden", tc.actor, err)
		}
	}
}
