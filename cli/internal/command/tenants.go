package command

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/artcafe-ai/pubsub/cli/internal/api"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

func (a *app) tenantsCommand() *cobra.Command {
	var lf listFlags
	list := &cobra.Command{
		Use: "list", Short: "List the tenants you belong to, with your role", Args: args(0, 0),
		Example: "  artcafe tenants list\n  artcafe tenants list --json | jq -r '.tenants[].id'",
		RunE: func(cmd *cobra.Command, _ []string) error {
			pg, err := a.list(cmd.Context(), a.client(), "/tenants", lf.query(), "tenants", lf.all)
			if err != nil {
				return err
			}
			return a.printList(pg, func() error {
				ts, err := decodeItems[tenantv1.Tenant](pg.items)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(ts))
				for _, t := range ts {
					rows = append(rows, []string{t.ID, t.Name, t.Role, t.SubscriptionTier, t.Status, a.ago(&t.CreatedAt)})
				}
				a.p.Table([]string{"ID", "NAME", "ROLE", "PLAN", "STATUS", "CREATED"}, rows)
				return nil
			})
		},
	}
	lf.bind(list)

	var cr tenantv1.CreateRequest
	create := &cobra.Command{
		Use: "create", Short: "Create a tenant (you become its owner; its API key is shown once)", Args: args(0, 0),
		Example: "  artcafe tenants create --name Acme --admin-email me@example.com\n" +
			"  artcafe tenants create --name Trial --admin-email me@example.com --plan free --trial-days 14",
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := a.client().Do(cmd.Context(), api.Request{Method: "POST", Path: "/tenants", Body: cr})
			if err != nil {
				return err
			}
			return a.printRaw(rep.Body, func() error {
				var out struct {
					tenantv1.CreateResponse
					AdminToken string `json:"admin_token"`
				}
				if err := rep.Decode(&out); err != nil {
					return err
				}
				a.printTenant(out.Tenant)
				a.p.Fields([2]string{"api_key", out.APIKey})
				a.p.Note("The API key is shown only now: keep it. Act in this tenant with:\n  export %s=%s", EnvTenant, out.TenantID)
				return nil
			})
		},
	}
	create.Flags().StringVar(&cr.Name, "name", "", "the tenant's name (required)")
	create.Flags().StringVar(&cr.AdminEmail, "admin-email", "", "the administrative contact (required)")
	create.Flags().StringVar(&cr.SubscriptionTier, "plan", "", "free, basic (default), pro; enterprise for platform admins")
	create.Flags().IntVar(&cr.TrialDays, "trial-days", 0, "length of a trial, ≤ 30 days")
	requireFlags(create, "name", "admin-email")

	get := &cobra.Command{
		Use: "get [TENANT_ID]", Short: "Show a tenant (default: --tenant-id)", Args: args(0, 1),
		Example: "  artcafe tenants get 3f0c…\n  ARTCAFE_TENANT=3f0c… artcafe tenants get --json",
		RunE: func(cmd *cobra.Command, as []string) error {
			id := a.tenant
			if len(as) == 1 {
				id = as[0]
			}
			if id == "" {
				return usagef("give a TENANT_ID or --tenant-id")
			}
			rep, err := a.client().Do(cmd.Context(), api.Request{Method: "GET", Path: "/tenants/" + pathID(id)})
			if err != nil {
				return err
			}
			return a.printRaw(rep.Body, func() error {
				var out tenantv1.TenantResponse
				if err := rep.Decode(&out); err != nil {
					return err
				}
				a.printTenant(out.Tenant)
				return nil
			})
		},
	}

	del := &cobra.Command{
		Use: "delete TENANT_ID", Short: "Delete a tenant and everything it owns (owner only)", Args: args(1, 1),
		Example: "  artcafe tenants delete 3f0c…",
		RunE: func(cmd *cobra.Command, as []string) error {
			if _, err := a.client().Do(cmd.Context(), api.Request{Method: "DELETE", Path: "/tenants/" + pathID(as[0])}); err != nil {
				return err
			}
			a.done("deleted tenant %s", as[0])
			return nil
		},
	}
	return group("tenants", "Tenants: list, create, get, delete", "  artcafe tenants list", list, create, get, del)
}

func (a *app) printTenant(t tenantv1.Tenant) {
	a.p.Fields(
		[2]string{"id", t.ID}, [2]string{"name", t.Name}, [2]string{"admin_email", t.AdminEmail},
		[2]string{"plan", t.SubscriptionTier}, [2]string{"status", t.Status}, [2]string{"payment_status", t.PaymentStatus},
		[2]string{"limits", fmt.Sprintf("agents %s, channels %s, ssh keys %s, messages/day %s",
			limit(t.Limits.MaxAgents), limit(t.Limits.MaxChannels), limit(t.Limits.MaxSSHKeys), limit(t.Limits.MaxMessagesPerDay))},
		[2]string{"created", a.when(&t.CreatedAt)}, [2]string{"updated", a.when(&t.UpdatedAt)},
	)
}

// done reports a change that has no reply body (a delete): a line for people, JSON for scripts.
func (a *app) done(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if a.json {
		_ = a.p.Value(map[string]any{"success": true, "message": msg})
		return
	}
	fmt.Fprintln(a.io.Out, strings.ToUpper(msg[:1])+msg[1:])
}

func (a *app) membersCommand() *cobra.Command {
	var lf listFlags
	list := &cobra.Command{
		Use: "list", Short: "List the members of --tenant-id", Args: args(0, 0),
		Example: "  artcafe members list --tenant-id 3f0c…",
		RunE: func(cmd *cobra.Command, _ []string) error {
			tid, err := a.needTenant()
			if err != nil {
				return err
			}
			pg, err := a.list(cmd.Context(), a.client(), "/tenants/"+pathID(tid)+"/members", lf.query(), "members", lf.all)
			if err != nil {
				return err
			}
			return a.printList(pg, func() error {
				ms, err := decodeItems[tenantv1.Member](pg.items)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(ms))
				for _, m := range ms {
					rows = append(rows, []string{m.UserID, m.Email, m.Role, a.ago(&m.JoinedAt)})
				}
				a.p.Table([]string{"USER", "EMAIL", "ROLE", "JOINED"}, rows)
				return nil
			})
		},
	}
	lf.bind(list)

	var role, email string
	add := &cobra.Command{
		Use: "add USER_ID", Short: "Add a user to --tenant-id with a role (admins)", Args: args(1, 1),
		Example: "  artcafe members add alice --role member --email alice@example.com --tenant-id 3f0c…",
		RunE: func(cmd *cobra.Command, as []string) error {
			tid, err := a.needTenant()
			if err != nil {
				return err
			}
			body := map[string]string{"user_id": as[0], "role": role}
			if email != "" {
				body["email"] = email
			}
			rep, err := a.client().Do(cmd.Context(), api.Request{Method: "POST", Path: "/tenants/" + pathID(tid) + "/members", Body: body})
			if err != nil {
				return err
			}
			return a.printRaw(rep.Body, func() error {
				var out struct {
					Member tenantv1.Member `json:"member"`
				}
				if err := rep.Decode(&out); err != nil {
					return err
				}
				a.p.Fields([2]string{"user_id", out.Member.UserID}, [2]string{"email", out.Member.Email}, [2]string{"role", out.Member.Role})
				return nil
			})
		},
	}
	add.Flags().StringVar(&role, "role", "member", "owner, admin, member or viewer")
	add.Flags().StringVar(&email, "email", "", "the member's email")

	remove := &cobra.Command{
		Use: "remove USER_ID", Short: "Remove a user from --tenant-id (admins)", Args: args(1, 1),
		Example: "  artcafe members remove alice --tenant-id 3f0c…",
		RunE: func(cmd *cobra.Command, as []string) error {
			tid, err := a.needTenant()
			if err != nil {
				return err
			}
			if _, err := a.client().Do(cmd.Context(), api.Request{Method: "DELETE", Path: "/tenants/" + pathID(tid) + "/members/" + pathID(as[0])}); err != nil {
				return err
			}
			a.done("removed %s from tenant %s", as[0], tid)
			return nil
		},
	}
	return group("members", "Members of a tenant: list, add, remove", "  artcafe members list --tenant-id 3f0c…", list, add, remove)
}
