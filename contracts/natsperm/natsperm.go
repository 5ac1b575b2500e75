// Package natsperm is the one source of truth for who may do what on NATS (SPEC §5): the
// subject permissions of each component's user (gateway and the five services), of the
// anonymous `ops` user (micro discovery only) and of an agent allowed to connect
// directly (its own tenant's channels and events, read-only). The launcher's embedded
// server and the generated infra/nats configs both come from here.
//
// Every component uses its own inbox prefix (InboxPrefix), so a component can only read
// replies to its own requests, and the anonymous ops user, which may read `_INBOX.>`,
// sees no RPC reply of the platform.
package natsperm

import (
	"fmt"
	"slices"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/limitsv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/contracts/presencev1"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Component (user) names. The services' names are their micro service names.
const (
	Gateway = "gateway"
	Tenant  = tenantv1.Service
	Agent   = agentv1.Service
	SSHKey  = sshkeyv1.Service
	Channel = channelv1.Service
	Usage   = usagev1.Service
	// Ops is the user anonymous connections map to (no_auth_user).
	Ops = "ops"
)

// GatewayBuckets are the KV buckets the gateway keeps shared state in across replicas:
// agent presence and the limiters' connection counts (contracts/limitsv1).
func GatewayBuckets() []string {
	return []string{presencev1.Bucket, limitsv1.ConnBucket}
}

// Components lists every component that authenticates with its own NKey, in the order
// the configs list them.
func Components() []string {
	return []string{Gateway, Tenant, Agent, SSHKey, Channel, Usage}
}

// Permissions are one user's subject permissions, as nats-server takes them. An empty
// list means no restriction in nats-server, so every user here has non-empty allow
// lists (or a deny of everything).
type Permissions struct {
	PublishAllow   []string
	PublishDeny    []string
	SubscribeAllow []string
	SubscribeDeny  []string
	// AllowResponses lets the user publish one reply to the reply subject of a message
	// it received (micro responders answer requests from any caller's inbox).
	AllowResponses bool
}

// InboxPrefix is the inbox prefix component's connection must use
// (nats.CustomInboxPrefix); its user may subscribe only under it.
func InboxPrefix(component string) string { return "_INBOX_" + component }

// CascadeConsumer is the durable consumer of service on the platform stream; it must
// equal services/kit/cascade.ConsumerName (a test in scripts/deploycheck checks it).
func CascadeConsumer(service string) string { return service + "-cascade" }

// For returns the permissions of component (one of Components or Ops).
func For(component string) (Permissions, error) {
	switch component {
	case Ops:
		return OpsPermissions(), nil
	case Gateway:
		return gateway(), nil
	case Tenant, Agent, SSHKey, Channel, Usage:
		return service(component), nil
	}
	return Permissions{}, fmt.Errorf("natsperm: unknown component %q", component)
}

// OpsPermissions are the anonymous user's: `nats micro ls/info/stats` and nothing else.
func OpsPermissions() Permissions {
	both := []string{"$SRV.>", "_INBOX.>"}
	return Permissions{PublishAllow: both, SubscribeAllow: slices.Clone(both)}
}

// AgentPermissions are those of an agent of tenantID connecting directly: it may read
// its tenant's channel messages (stored and live) and events, and publish nothing.
// tenantID must be a canonical lower-case UUID.
func AgentPermissions(tenantID string) (Permissions, error) {
	if !validation.IsUUID(tenantID) {
		return Permissions{}, fmt.Errorf("natsperm: tenant id %q is not a lower-case UUID", tenantID)
	}
	return Permissions{
		PublishDeny:    []string{">"},
		SubscribeAllow: []string{"tenant." + tenantID + ".channel.>", eventsv1.TenantWildcard(tenantID)},
	}, nil
}

// gateway: calls every service, publishes channel messages to the stream (never their
// live copies) and its usage counts, keeps shared state in its KV buckets, reads history
// and live feeds, and listens to cache hints and tenant events.
func gateway() Permissions {
	p := Permissions{
		PublishAllow: []string{
			"svc.>",
			"$SRV.PING.*", // /health counts service instances
			messagev1.StreamSubjects,
			usagev1.SubjectCounts,
			"$JS.API.INFO",
		},
		SubscribeAllow: []string{
			InboxPrefix(Gateway) + ".>",
			"tenant.*.channel.*.live",
			"tenant.*.events.>",
			tenantv1.SubjectTenantChanged,
			agentv1.SubjectAgentChanged,
			sshkeyv1.SubjectKeyChanged,
		},
	}
	p.PublishAllow = append(p.PublishAllow, streamRead(messagev1.Stream)...)
	p.PublishAllow = append(p.PublishAllow, streamConsume(messagev1.Stream, "*")...)
	p.PublishAllow = append(p.PublishAllow, streamEnsure(usagev1.Stream)...)
	// The limiters' counters: adds (Nats-Incr) and reads of the counter streams.
	p.PublishAllow = append(p.PublishAllow, limitsv1.RateSubjects, limitsv1.QuotaSubjects)
	for _, s := range limitsv1.CounterStreams() {
		p.PublishAllow = append(p.PublishAllow, streamEnsure(s)...)
		p.PublishAllow = append(p.PublishAllow, streamRead(s)...)
	}
	for _, b := range GatewayBuckets() {
		p.PublishAllow = append(p.PublishAllow, kvPublish(b))
		p.PublishAllow = append(p.PublishAllow, streamEnsure(kvStream(b))...)
		p.PublishAllow = append(p.PublishAllow, streamRead(kvStream(b))...)
		p.PublishAllow = append(p.PublishAllow, streamConsume(kvStream(b), "*")...)
	}
	return p
}

// service: serves its own svc.<name>.> group and answers micro discovery, calls the
// services it depends on, emits its events (and usage gauges), ensures the platform
// stream and runs its tenant-cascade consumer.
func service(name string) Permissions {
	p := Permissions{
		PublishAllow: []string{"$JS.API.INFO"},
		SubscribeAllow: []string{
			"svc." + name + ".>",
			"$SRV.*", "$SRV.*." + name, "$SRV.*." + name + ".>",
			InboxPrefix(name) + ".>",
		},
		AllowResponses: true,
	}
	p.PublishAllow = append(p.PublishAllow, streamEnsure(platform.Stream)...)
	p.PublishAllow = append(p.PublishAllow, streamConsume(platform.Stream, CascadeConsumer(name))...)
	if name == Agent || name == Channel || name == SSHKey {
		// Their counts (agents, channels, keys) reach the usage service as gauges.
		p.PublishAllow = append(p.PublishAllow, usagev1.SubjectGauge)
		p.PublishAllow = append(p.PublishAllow, streamEnsure(usagev1.Stream)...)
	}

	switch name {
	case Tenant:
		p.PublishAllow = append(p.PublishAllow, tenantv1.SubjectTenantDeleted, tenantv1.SubjectTenantChanged)
	case Agent:
		p.PublishAllow = append(p.PublishAllow,
			sshkeyv1.Subject(sshkeyv1.OpCheckPublicKey),
			sshkeyv1.Subject(sshkeyv1.OpCreateForAgent),
			sshkeyv1.Subject(sshkeyv1.OpDeleteForAgent),
			channelv1.Subject(channelv1.OpAgentRemoved),
			eventsv1.Subject("*", eventsv1.EntityAgents, "*"),
			agentv1.SubjectAgentChanged,
		)
		// The agent service creates the presence bucket if the gateway has not, and
		// watches every session in it.
		p.PublishAllow = append(p.PublishAllow, streamEnsure(kvStream(presencev1.Bucket))...)
		p.PublishAllow = append(p.PublishAllow, streamRead(kvStream(presencev1.Bucket))...)
		p.PublishAllow = append(p.PublishAllow, streamConsume(kvStream(presencev1.Bucket), "*")...)
	case SSHKey:
		p.PublishAllow = append(p.PublishAllow, agentv1.Subject(agentv1.OpLookup), sshkeyv1.SubjectKeyChanged)
	case Channel:
		p.PublishAllow = append(p.PublishAllow,
			agentv1.Subject(agentv1.OpLookup),
			eventsv1.AllChannelEvents,
			eventsv1.AllSubscriptionEvents,
			"$JS.API.STREAM.PURGE."+messagev1.Stream,
		)
		// It owns the message stream and trims channels when their events say so.
		p.PublishAllow = append(p.PublishAllow, streamEnsure(messagev1.Stream)...)
		p.PublishAllow = append(p.PublishAllow, streamRead(messagev1.Stream)...)
		p.SubscribeAllow = append(p.SubscribeAllow, eventsv1.AllChannelEvents)
	case Usage:
		// It owns the metering stream and applies it with one durable consumer.
		p.PublishAllow = append(p.PublishAllow, streamEnsure(usagev1.Stream)...)
		p.PublishAllow = append(p.PublishAllow, streamConsume(usagev1.Stream, usagev1.DurableApplier)...)
	}
	return p
}

// kvStream is the stream behind a KV bucket.
func kvStream(bucket string) string { return "KV_" + bucket }

// kvPublish is where values of a KV bucket are written.
func kvPublish(bucket string) string { return "$KV." + bucket + ".>" }

// streamEnsure: look up, create or update the stream (CreateOrUpdateStream,
// CreateKeyValue).
func streamEnsure(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.CREATE." + stream,
		"$JS.API.STREAM.UPDATE." + stream,
	}
}

// streamRead: stream info and single-message reads (direct or through the leader).
func streamRead(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
	}
}

// streamConsume: create, read, fetch from and delete the consumer named consumer ("*":
// any, for ephemeral and ordered consumers) of stream, and acknowledge its messages.
func streamConsume(stream, consumer string) []string {
	return []string{
		"$JS.API.CONSUMER.CREATE." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + "." + consumer,
		"$JS.API.CONSUMER.CREATE." + stream + "." + consumer + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + stream + "." + consumer,
		"$JS.API.CONSUMER.INFO." + stream + "." + consumer,
		"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer,
		"$JS.API.CONSUMER.DELETE." + stream + "." + consumer,
		"$JS.ACK." + stream + "." + consumer + ".>",
		"$JS.FC." + stream + ".>",
	}
}

// Compact returns p with duplicate subjects removed, order kept.
func (p Permissions) Compact() Permissions {
	return Permissions{
		PublishAllow:   dedupe(p.PublishAllow),
		PublishDeny:    dedupe(p.PublishDeny),
		SubscribeAllow: dedupe(p.SubscribeAllow),
		SubscribeDeny:  dedupe(p.SubscribeDeny),
		AllowResponses: p.AllowResponses,
	}
}

func dedupe(in []string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
