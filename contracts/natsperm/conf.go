package natsperm

import (
	"fmt"
	"strconv"
	"strings"
)

// NKeyEnv is the environment variable a deployed nats-server reads component's public
// NKey from (the generated configs reference it as $NATS_NKEY_<NAME>).
func NKeyEnv(component string) string {
	return "NATS_NKEY_" + strings.ToUpper(component)
}

// NKeyFromEnv is the key source of the committed configs: each component's public key
// is a variable the server resolves from its environment.
func NKeyFromEnv(component string) string { return "$" + NKeyEnv(component) }

// NKeyLiteral is the key source of a config with known public keys (the launcher's).
func NKeyLiteral(keys map[string]string) func(string) string {
	return func(component string) string { return strconv.Quote(keys[component]) }
}

// AuthConfig renders the nats-server configuration of every user: one NKey user per
// component (nkey returns the value written after `nkey:`, e.g. NKeyFromEnv) and the
// ops user that anonymous connections map to. The text is a fragment to `include` in
// a server config; it holds no secret (public keys only).
func AuthConfig(nkey func(component string) string) string {
	var b strings.Builder
	b.WriteString("# Users and subject permissions (SPEC §5). Generated from contracts/natsperm by\n")
	b.WriteString("# `go run ./scripts/natsconf`; do not edit. Public keys only: each component's seed\n")
	b.WriteString("# stays with that component (NATS_CREDS).\n")
	b.WriteString("authorization {\n  users = [\n")
	for _, c := range Components() {
		p, _ := For(c)
		fmt.Fprintf(&b, "    # %s\n    {\n      nkey: %s\n", c, nkey(c))
		writePermissions(&b, p.Compact(), "      ")
		b.WriteString("    }\n")
	}
	b.WriteString("    # anonymous connections (no_auth_user): nats micro ls/info/stats only\n")
	fmt.Fprintf(&b, "    {\n      user: %s\n", Ops)
	writePermissions(&b, OpsPermissions(), "      ")
	b.WriteString("    }\n  ]\n}\n")
	fmt.Fprintf(&b, "no_auth_user: %s\n", Ops)
	return b.String()
}

func writePermissions(b *strings.Builder, p Permissions, indent string) {
	fmt.Fprintf(b, "%spermissions: {\n", indent)
	list := func(kind string, allow, deny []string) {
		if len(allow) == 0 && len(deny) == 0 {
			return
		}
		fmt.Fprintf(b, "%s  %s: {\n", indent, kind)
		for _, l := range []struct {
			name string
			subs []string
		}{{"allow", allow}, {"deny", deny}} {
			if len(l.subs) == 0 {
				continue
			}
			fmt.Fprintf(b, "%s    %s: [\n", indent, l.name)
			for _, s := range l.subs {
				fmt.Fprintf(b, "%s      %s\n", indent, strconv.Quote(s))
			}
			fmt.Fprintf(b, "%s    ]\n", indent)
		}
		fmt.Fprintf(b, "%s  }\n", indent)
	}
	list("publish", p.PublishAllow, p.PublishDeny)
	list("subscribe", p.SubscribeAllow, p.SubscribeDeny)
	if p.AllowResponses {
		fmt.Fprintf(b, "%s  allow_responses: true\n", indent)
	}
	fmt.Fprintf(b, "%s}\n", indent)
}
