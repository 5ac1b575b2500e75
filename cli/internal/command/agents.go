package command

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/artcafe-ai/pubsub/cli/internal/api"
	"github.com/artcafe-ai/pubsub/cli/internal/output"
	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

func limit(p *int64) string {
	if p == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*p, 10)
}

func capabilityNames(cs []agentv1.Capability) string {
	names := make([]string, 0, len(cs))
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return strings.Join(names, ",")
}

// jsonObject parses a flag's JSON object (metadata).
func jsonObject(flag, s string) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil || m == nil {
		return nil, usagef("--%s must be a JSON object, e.g. '{\"team\":\"ops\"}'", flag)
	}
	return m, nil
}

func (a *app) agentsCommand() *cobra.Command {
	var lf listFlags
	var status, typ, capability string
	list := &cobra.Command{
		Use: "list", Short: "List agents (filters combine with AND)", Args: args(0, 0),
		Example: "  artcafe agents list\n  artcafe agents list --status online --capability summarize\n  artcafe agents list --all --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := lf.query()
			for k, v := range map[string]string{"status": status, "type": typ, "capability": capability} {
				if v != "" {
					q.Set(k, v)
				}
			}
			pg, err := a.list(cmd.Context(), a.client(), "/agents", q, "agents", lf.all)
			if err != nil {
				return err
			}
			return a.printList(pg, func() error {
				as, err := decodeItems[agentv1.Agent](pg.items)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(as))
				for _, ag := range as {
					rows = append(rows, []string{ag.ID, ag.Name, ag.Type, ag.Status, output.Short(capabilityNames(ag.Capabilities), 40),
						a.ago(ag.LastSeen), a.ago(&ag.CreatedAt)})
				}
				a.p.Table([]string{"ID", "NAME", "TYPE", "STATUS", "CAPABILITIES", "LAST SEEN", "CREATED"}, rows)
				return nil
			})
		},
	}
	lf.bind(list)
	list.Flags().StringVar(&status, "status", "", "online, offline, busy, idle or error")
	list.Flags().StringVar(&typ, "type", "", "worker, supervisor, specialist, system or custom")
	list.Flags().StringVar(&capability, "capability", "", "a capability name")

	var body agentv1.CreateBody
	var caps []string
	var metadata, publicKeyFile string
	create := &cobra.Command{
		Use: "create", Short: "Register an agent (optionally with its SSH public key)", Args: args(0, 0),
		Example: "  artcafe agents create --name summarizer --capability summarize\n" +
			"  artcafe agents create --name bot --type specialist --public-key ~/.ssh/bot.pub --metadata '{\"team\":\"ops\"}'",
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, c := range caps {
				body.Capabilities = append(body.Capabilities, agentv1.Capability{Name: c})
			}
			if metadata != "" {
				m, err := jsonObject("metadata", metadata)
				if err != nil {
					return err
				}
				body.Metadata = m
			}
			if publicKeyFile != "" {
				b, err := os.ReadFile(publicKeyFile)
				if err != nil {
					return err
				}
				body.PublicKey = strings.TrimSpace(string(b))
			}
			rep, err := a.client().Do(cmd.Context(), api.Request{Method: "POST", Path: "/agents", Body: body})
			if err != nil {
				return err
			}
			return a.printRaw(rep.Body, func() error {
				var out agentv1.CreateResponse
				if err := rep.Decode(&out); err != nil {
					return err
				}
				a.printAgent(out.Agent)
				if out.Key != nil {
					a.p.Fields([2]string{"key_id", out.Key.KeyID}, [2]string{"fingerprint", out.Key.Fingerprint})
				}
				return nil
			})
		},
	}
	create.Flags().StringVar(&body.Name, "name", "", "the agent's name (required)")
	create.Flags().StringVar(&body.Type, "type", "", "worker (default), supervisor, specialist, system or custom")
	create.Flags().StringVar(&body.Description, "description", "", "what the agent does")
	create.Flags().StringArrayVar(&caps, "capability", nil, "a capability name (repeat for several)")
	create.Flags().StringVar(&metadata, "metadata", "", "a JSON object")
	create.Flags().StringVar(&publicKeyFile, "public-key", "", "an OpenSSH public key file, registered as the agent's key")
	requireFlags(create, "name")

	get := &cobra.Command{
		Use: "get AGENT_ID", Short: "Show an agent", Args: args(1, 1),
		Example: "  artcafe agents get 01J…",
		RunE: func(cmd *cobra.Command, as []string) error {
			return a.agentCall(cmd, "GET", "/agents/"+pathID(as[0]), nil)
		},
	}

	var name, upType, description string
	var upCaps []string
	var upMeta string
	update := &cobra.Command{
		Use: "update AGENT_ID", Short: "Change an agent (only the flags given change)", Args: args(1, 1),
		Example: "  artcafe agents update 01J… --description 'summarizes tickets' --capability summarize --capability translate",
		RunE: func(cmd *cobra.Command, as []string) error {
			body := map[string]any{}
			fl := cmd.Flags()
			if fl.Changed("name") {
				body["name"] = name
			}
			if fl.Changed("type") {
				body["type"] = upType
			}
			if fl.Changed("description") {
				body["description"] = description
			}
			if fl.Changed("capability") {
				cs := []agentv1.Capability{}
				for _, c := range upCaps {
					cs = append(cs, agentv1.Capability{Name: c})
				}
				body["capabilities"] = cs
			}
			if fl.Changed("metadata") {
				m, err := jsonObject("metadata", upMeta)
				if err != nil {
					return err
				}
				body["metadata"] = m
			}
			if len(body) == 0 {
				return usagef("nothing to change: give --name, --type, --description, --capability or --metadata")
			}
			return a.agentCall(cmd, "PUT", "/agents/"+pathID(as[0]), body)
		},
	}
	update.Flags().StringVar(&name, "name", "", "new name")
	update.Flags().StringVar(&upType, "type", "", "new type")
	update.Flags().StringVar(&description, "description", "", "new description")
	update.Flags().StringArrayVar(&upCaps, "capability", nil, "the capabilities (replace the list; repeat for several)")
	update.Flags().StringVar(&upMeta, "metadata", "", "new metadata, a JSON object (replaces the old)")

	setStatus := &cobra.Command{
		Use: "status AGENT_ID STATUS", Short: "Set an agent's status by hand (online, offline, busy, idle, error)", Args: args(2, 2),
		Example: "  artcafe agents status 01J… busy",
		RunE: func(cmd *cobra.Command, as []string) error {
			return a.agentCall(cmd, "PUT", "/agents/"+pathID(as[0])+"/status", agentv1.SetStatusBody{Status: as[1]})
		},
	}

	del := &cobra.Command{
		Use: "delete AGENT_ID", Short: "Delete an agent (its SSH keys too; its sessions close)", Args: args(1, 1),
		Example: "  artcafe agents delete 01J…",
		RunE: func(cmd *cobra.Command, as []string) error {
			if _, err := a.client().Do(cmd.Context(), api.Request{Method: "DELETE", Path: "/agents/" + pathID(as[0])}); err != nil {
				return err
			}
			a.done("deleted agent %s", as[0])
			return nil
		},
	}
	return group("agents", "Agents: list, create, get, update, status, delete", "  artcafe agents list --status online",
		list, create, get, update, setStatus, del)
}

// agentCall sends a call whose reply is {agent, success} and prints the agent.
func (a *app) agentCall(cmd *cobra.Command, method, path string, body any) error {
	rep, err := a.client().Do(cmd.Context(), api.Request{Method: method, Path: path, Body: body})
	if err != nil {
		return err
	}
	return a.printRaw(rep.Body, func() error {
		var out agentv1.AgentResponse
		if err := rep.Decode(&out); err != nil {
			return err
		}
		a.printAgent(out.Agent)
		return nil
	})
}

func (a *app) printAgent(ag agentv1.Agent) {
	meta := "-"
	if len(ag.Metadata) > 0 {
		b, _ := json.Marshal(ag.Metadata)
		meta = string(b)
	}
	a.p.Fields(
		[2]string{"id", ag.ID}, [2]string{"name", ag.Name}, [2]string{"type", ag.Type}, [2]string{"status", ag.Status},
		[2]string{"description", ag.Description}, [2]string{"capabilities", capabilityNames(ag.Capabilities)},
		[2]string{"metadata", meta}, [2]string{"last_seen", a.when(ag.LastSeen)},
		[2]string{"created", a.when(&ag.CreatedAt)}, [2]string{"updated", a.when(&ag.UpdatedAt)},
	)
}

func (a *app) keysCommand() *cobra.Command {
	var lf listFlags
	var agentID, keyType string
	list := &cobra.Command{
		Use: "list", Short: "List SSH keys", Args: args(0, 0),
		Example: "  artcafe keys list\n  artcafe keys list --agent 01J…",
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := lf.query()
			if agentID != "" {
				q.Set("agent_id", agentID)
			}
			if keyType != "" {
				q.Set("key_type", keyType)
			}
			pg, err := a.list(cmd.Context(), a.client(), "/ssh-keys", q, "keys", lf.all)
			if err != nil {
				return err
			}
			return a.printList(pg, func() error {
				ks, err := decodeItems[sshkeyv1.Key](pg.items)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(ks))
				for _, k := range ks {
					agent := ""
					if k.AgentID != nil {
						agent = *k.AgentID
					}
					rows = append(rows, []string{k.ID, k.Name, k.KeyType, agent, k.Fingerprint, k.Status, a.ago(k.LastUsed), a.ago(&k.CreatedAt)})
				}
				a.p.Table([]string{"ID", "NAME", "TYPE", "AGENT", "FINGERPRINT", "STATUS", "LAST USED", "CREATED"}, rows)
				return nil
			})
		},
	}
	lf.bind(list)
	list.Flags().StringVar(&agentID, "agent", "", "only the keys of this agent")
	list.Flags().StringVar(&keyType, "type", "", "access, agent or deployment")

	var body sshkeyv1.CreateBody
	add := &cobra.Command{
		Use: "add PUBLIC_KEY_FILE|-", Short: "Register an SSH public key (from a file, or - for stdin)", Args: args(1, 1),
		Example: "  artcafe keys add ~/.ssh/bot.pub --name bot --agent 01J…\n  ssh-keygen -y -f bot | artcafe keys add - --name bot --agent 01J…",
		RunE: func(cmd *cobra.Command, as []string) error {
			b, err := readInput(a.io.In, as[0], 64<<10)
			if err != nil {
				return err
			}
			body.PublicKey = strings.TrimSpace(string(b))
			if body.Name == "" {
				body.Name = "key"
				if f := strings.Fields(body.PublicKey); len(f) >= 3 {
					body.Name = f[2] // the key's comment
				}
			}
			return a.keyCall(cmd, "POST", "/ssh-keys", body)
		},
	}
	add.Flags().StringVar(&body.Name, "name", "", "a name for the key (default: the key's comment)")
	add.Flags().StringVar(&body.AgentID, "agent", "", "the agent this key logs in as")
	add.Flags().StringVar(&body.KeyType, "type", "", "agent (default with --agent), access or deployment")

	get := &cobra.Command{
		Use: "get KEY_ID", Short: "Show an SSH key", Args: args(1, 1), Example: "  artcafe keys get 01J…",
		RunE: func(cmd *cobra.Command, as []string) error {
			return a.keyCall(cmd, "GET", "/ssh-keys/"+pathID(as[0]), nil)
		},
	}
	var reason string
	revoke := &cobra.Command{
		Use: "revoke KEY_ID", Short: "Revoke an SSH key (it can no longer log in; its tokens stop working)", Args: args(1, 1),
		Example: "  artcafe keys revoke 01J… --reason 'laptop lost'",
		RunE: func(cmd *cobra.Command, as []string) error {
			return a.keyCall(cmd, "POST", "/ssh-keys/"+pathID(as[0])+"/revoke", sshkeyv1.RevokeBody{Reason: reason})
		},
	}
	revoke.Flags().StringVar(&reason, "reason", "", "why (kept on the key)")
	del := &cobra.Command{
		Use: "delete KEY_ID", Short: "Delete an SSH key", Args: args(1, 1), Example: "  artcafe keys delete 01J…",
		RunE: func(cmd *cobra.Command, as []string) error {
			if _, err := a.client().Do(cmd.Context(), api.Request{Method: "DELETE", Path: "/ssh-keys/" + pathID(as[0])}); err != nil {
				return err
			}
			a.done("deleted key %s", as[0])
			return nil
		},
	}
	return group("keys", "SSH keys: list, add, get, revoke, delete", "  artcafe keys list --agent 01J…", list, add, get, revoke, del)
}

func (a *app) keyCall(cmd *cobra.Command, method, path string, body any) error {
	rep, err := a.client().Do(cmd.Context(), api.Request{Method: method, Path: path, Body: body})
	if err != nil {
		return err
	}
	return a.printRaw(rep.Body, func() error {
		var out sshkeyv1.KeyResponse
		if err := rep.Decode(&out); err != nil {
			return err
		}
		k := out.Key
		agent := ""
		if k.AgentID != nil {
			agent = *k.AgentID
		}
		revoked := "-"
		if k.Revoked {
			revoked = a.when(k.RevokedAt)
			if k.RevocationReason != nil {
				revoked += ": " + *k.RevocationReason
			}
		}
		a.p.Fields(
			[2]string{"id", k.ID}, [2]string{"name", k.Name}, [2]string{"type", k.KeyType}, [2]string{"agent", agent},
			[2]string{"algorithm", k.Algorithm}, [2]string{"fingerprint", k.Fingerprint}, [2]string{"status", k.Status},
			[2]string{"revoked", revoked}, [2]string{"last_used", a.when(k.LastUsed)}, [2]string{"created", a.when(&k.CreatedAt)},
		)
		return nil
	})
}

// readInput reads an argument's content: "-" is stdin, anything else a file; at most max bytes.
func readInput(stdin io.Reader, name string, max int64) ([]byte, error) {
	if name == "-" {
		b, err := readLimited(stdin, max)
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return b, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return readLimited(f, max)
}
