package command

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/artcafe-ai/pubsub/cli/internal/api"
)

// The usage and billing replies are decoded loosely (SPEC §4.7 names the fields): a
// field the API adds later shows up in --json without a change here.

// usageColumns are the daily counters shown in the table, in order.
var usageColumns = []struct{ field, title string }{
	{"api_calls", "API CALLS"}, {"messages_published", "PUBLISHED"}, {"messages_delivered", "DELIVERED"},
	{"bytes_in", "BYTES IN"}, {"bytes_out", "BYTES OUT"}, {"agents", "AGENTS"}, {"active_agents", "ACTIVE"},
	{"channels", "CHANNELS"}, {"ssh_keys", "KEYS"}, {"peak_connections", "PEAK CONN"},
}

func number(v any) string {
	switch n := v.(type) {
	case nil:
		return "-"
	case float64:
		return strconv.FormatFloat(n, 'f', -1, 64)
	case json.Number:
		return n.String()
	case string:
		return n
	default:
		return fmt.Sprint(n)
	}
}

func (a *app) usageCommand() *cobra.Command {
	var from, to string
	c := &cobra.Command{
		Use: "usage", Short: "Daily usage of the tenant (default: the last 7 days)", Args: args(0, 0),
		Example: "  artcafe usage\n  artcafe usage --from 2026-01-01 --to 2026-01-31 --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for flag, v := range map[string]string{"from": from, "to": to} {
				if v == "" {
					continue
				}
				if _, err := time.Parse(time.DateOnly, v); err != nil {
					return usagef("--%s %q is not a date YYYY-MM-DD", flag, v)
				}
			}
			if from != "" {
				q.Set("start_date", from)
			}
			if to != "" {
				q.Set("end_date", to)
			}
			rep, err := a.client().Do(cmd.Context(), api.Request{Method: "GET", Path: "/usage-metrics", Query: q})
			if err != nil {
				return err
			}
			return a.printRaw(rep.Body, func() error {
				var out struct {
					Metrics []map[string]any `json:"metrics"`
					Totals  map[string]any   `json:"totals"`
					Limits  map[string]any   `json:"limits"`
				}
				if err := rep.Decode(&out); err != nil {
					return err
				}
				headers := []string{"DATE"}
				for _, col := range usageColumns {
					headers = append(headers, col.title)
				}
				rows := make([][]string, 0, len(out.Metrics)+1)
				for _, m := range out.Metrics {
					row := []string{number(m["date"])}
					for _, col := range usageColumns {
						row = append(row, number(m[col.field]))
					}
					rows = append(rows, row)
				}
				if out.Totals != nil {
					row := []string{"TOTAL"}
					for _, col := range usageColumns {
						row = append(row, number(out.Totals[col.field]))
					}
					rows = append(rows, row)
				}
				a.p.Table(headers, rows)
				if len(out.Limits) > 0 {
					keys := make([]string, 0, len(out.Limits))
					for k := range out.Limits {
						keys = append(keys, k)
					}
					sort.Strings(keys)
					fmt.Fprint(a.io.Out, "\nLimits:")
					for _, k := range keys {
						v := number(out.Limits[k])
						if out.Limits[k] == nil {
							v = "unlimited"
						}
						fmt.Fprintf(a.io.Out, " %s=%s", k, v)
					}
					fmt.Fprintln(a.io.Out)
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&from, "from", "", "first day, YYYY-MM-DD (UTC, inclusive)")
	c.Flags().StringVar(&to, "to", "", "last day, YYYY-MM-DD (UTC, inclusive)")
	return c
}

func (a *app) billingCommand() *cobra.Command {
	var plans bool
	c := &cobra.Command{
		Use: "billing", Short: "The tenant's plan and next bill (--plans: every plan and its limits)", Args: args(0, 0),
		Example: "  artcafe billing\n  artcafe billing --plans",
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/billing"
			if plans {
				path = "/billing/plans"
			}
			rep, err := a.client().Do(cmd.Context(), api.Request{Method: "GET", Path: path})
			if err != nil {
				return err
			}
			return a.printRaw(rep.Body, func() error {
				if plans {
					var out struct {
						Plans []map[string]any `json:"plans"`
					}
					if err := rep.Decode(&out); err != nil {
						return err
					}
					rows := make([][]string, 0, len(out.Plans))
					for _, p := range out.Plans {
						lim, _ := p["limits"].(map[string]any)
						l := func(k string) string {
							if lim == nil {
								return "-"
							}
							if v, ok := lim[k]; ok && v == nil {
								return "unlimited"
							}
							return number(lim[k])
						}
						rows = append(rows, []string{number(p["id"]), number(p["name"]), number(p["price_monthly"]),
							l("max_agents"), l("max_channels"), l("max_ssh_keys"), l("max_messages_per_day")})
					}
					a.p.Table([]string{"ID", "NAME", "$/MONTH", "AGENTS", "CHANNELS", "KEYS", "MESSAGES/DAY"}, rows)
					return nil
				}
				var b map[string]any
				if err := rep.Decode(&b); err != nil {
					return err
				}
				var pairs [][2]string
				for _, k := range []string{"tenant_id", "plan", "status", "amount", "currency", "billing_cycle", "next_billing_date"} {
					pairs = append(pairs, [2]string{k, number(b[k])})
				}
				a.p.Fields(pairs...)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&plans, "plans", false, "list the plans instead")
	return c
}

func (a *app) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use: "whoami", Short: "Who the token is (user, agent or API key), in which tenant, with which role", Args: args(0, 0),
		Example: "  artcafe whoami\n  artcafe whoami --json --token \"$AGENT_TOKEN\"",
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := a.client().Do(cmd.Context(), api.Request{Method: "GET", Path: "/me"})
			if err != nil {
				return err
			}
			return a.printRaw(rep.Body, func() error {
				var me struct {
					Kind          string     `json:"kind"`
					UserID        string     `json:"user_id"`
					Email         string     `json:"email"`
					AgentID       string     `json:"agent_id"`
					KeyID         string     `json:"key_id"`
					TenantID      string     `json:"tenant_id"`
					Role          string     `json:"role"`
					PlatformAdmin bool       `json:"platform_admin"`
					ExpiresAt     *time.Time `json:"expires_at"`
				}
				if err := rep.Decode(&me); err != nil {
					return err
				}
				pairs := [][2]string{{"kind", me.Kind}}
				for _, kv := range [][2]string{{"user_id", me.UserID}, {"email", me.Email}, {"agent_id", me.AgentID},
					{"key_id", me.KeyID}, {"tenant_id", me.TenantID}, {"role", me.Role}} {
					if kv[1] != "" {
						pairs = append(pairs, kv)
					}
				}
				if me.PlatformAdmin {
					pairs = append(pairs, [2]string{"platform_admin", "yes"})
				}
				if me.ExpiresAt != nil {
					pairs = append(pairs, [2]string{"expires", a.when(me.ExpiresAt)})
				}
				a.p.Fields(pairs...)
				return nil
			})
		},
	}
}
