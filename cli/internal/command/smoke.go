package command

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/artcafe-ai/pubsub/cli/internal/api"
	"github.com/artcafe-ai/pubsub/cli/internal/output"
	"github.com/artcafe-ai/pubsub/contracts/agentlogin"
	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

// smokeCapability marks what the smoke test creates.
const smokeCapability = "smoke-test"

// stepResult is one step's outcome, as printed and as --json reports it.
type stepResult struct {
	Name    string     `json:"name"`
	Status  string     `json:"status"` // passed, failed, skipped
	Millis  int64      `json:"ms"`
	Info    string     `json:"info,omitempty"`
	Error   *api.Error `json:"error,omitempty"`
	Message string     `json:"message,omitempty"` // a failure that is not an API error
}

// smokeRun is the state the steps share.
type smokeRun struct {
	a      *app
	c      *api.Client
	tenant string
	// What the run created, for the checks and the clean-up.
	createdTenant                    bool
	agentID, keyID, channelID, msgID string
	msgSeq                           uint64
	nonce                            string
	signer                           ssh.Signer
	agentToken                       string
	ws                               *websocket.Conn
	frames                           chan realtimev1.ServerFrame
	stopWS                           context.CancelFunc
	closingWS                        chan struct{}
	results                          []stepResult
	failed                           bool // a required step failed: the rest is skipped
}

type smokeStep struct {
	name string
	// optional steps do not stop the run when they fail (the run still fails).
	optional bool
	// cleanup steps run even after a failure, when there is something to clean.
	cleanup bool
	run     func(ctx context.Context) (string, error)
}

func (a *app) smokeCommand() *cobra.Command {
	var adminEmail string
	var keep bool
	c := &cobra.Command{
		Use:   "smoke",
		Short: "Walk the whole platform once and report each step (exit 0 only if all pass)",
		Long: `smoke is the original test client's sequence against a live deployment, with ✓/✗ and
the time of each step: create a tenant (unless --tenant-id is given), register an agent
with a capability, list and get it, set its status, add an SSH key for it (an ed25519 key
generated in memory), list keys, log the agent in with that key and open a WebSocket as
the agent, create a channel, list and get it, subscribe the agent, publish a message over
REST and see it arrive on the agent's socket, read it back from history, read usage and
billing, delete the key. Then it cleans up: the tenant it created (or, in a given tenant,
the agent and channel it created), unless --keep.

A failed step prints the API's detail, code and request_id; the steps that need it are
skipped. The exit code is 0 only if every step passed.`,
		Example: `  artcafe smoke --api-endpoint http://localhost:8000/api/v1 --token "$(make -s token)"
  artcafe smoke --tenant-id 3f0c… --json | jq '.steps[] | select(.status != "passed")'`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := &smokeRun{a: a, c: a.client(), tenant: a.tenant}
			ok := r.run(cmd.Context(), adminEmail, keep)
			if !ok {
				return exitError{ExitFail}
			}
			return nil
		},
	}
	c.Flags().StringVar(&adminEmail, "admin-email", "smoke@example.com", "admin_email of the tenant smoke creates")
	c.Flags().BoolVar(&keep, "keep", false, "keep what smoke created (tenant, or agent and channel)")
	return c
}

func (r *smokeRun) run(ctx context.Context, adminEmail string, keep bool) bool {
	start := time.Now()
	r.nonce = randomHex(8)
	if !r.a.json {
		fmt.Fprintf(r.a.io.Out, "Smoke test of %s\n", r.a.api)
	}
	steps := r.steps(adminEmail, keep)
	for _, st := range steps {
		res := stepResult{Name: st.name}
		switch {
		case r.failed && !st.cleanup:
			res.Status = "skipped"
		default:
			t0 := time.Now()
			info, err := st.run(ctx)
			res.Millis = time.Since(t0).Milliseconds()
			switch {
			case errors.Is(err, errNothingToDo):
				res.Status = "skipped"
			case err != nil:
				res.Status = "failed"
				var ae *api.Error
				if errors.As(err, &ae) {
					res.Error = ae
				} else {
					res.Message = err.Error()
				}
				if !st.optional && !st.cleanup {
					r.failed = true
				}
			default:
				res.Status = "passed"
				res.Info = info
			}
		}
		r.results = append(r.results, res)
		r.printStep(res)
	}
	r.closeWS()
	counts := map[string]int{}
	for _, res := range r.results {
		counts[res.Status]++
	}
	ok := counts["failed"] == 0 && counts["skipped"] == r.skippedCleanups()
	total := time.Since(start)
	if r.a.json {
		_ = r.a.p.Value(map[string]any{
			"ok": ok, "api_endpoint": r.a.api, "tenant_id": r.tenant, "steps": r.results,
			"passed": counts["passed"], "failed": counts["failed"], "skipped": counts["skipped"], "ms": total.Milliseconds(),
		})
	} else {
		mark := "✓ all passed"
		if !ok {
			mark = "✗ FAILED"
		}
		fmt.Fprintf(r.a.io.Out, "\n%s: %d passed, %d failed, %d skipped in %s\n", mark,
			counts["passed"], counts["failed"], counts["skipped"], total.Round(time.Millisecond))
	}
	return ok
}

// skippedCleanups counts the clean-up steps skipped because there was nothing to clean:
// those do not make a run fail.
func (r *smokeRun) skippedCleanups() int {
	n := 0
	for _, res := range r.results {
		if res.Status == "skipped" && strings.HasPrefix(res.Name, "clean up") {
			n++
		}
	}
	return n
}

func (r *smokeRun) printStep(res stepResult) {
	if r.a.json {
		return
	}
	out := r.a.io.Out
	mark := map[string]string{"passed": "✓", "failed": "✗", "skipped": "-"}[res.Status]
	dur := fmt.Sprintf("%dms", res.Millis)
	if res.Status == "skipped" {
		dur = "skipped"
	}
	fmt.Fprintf(out, "%s %-40s %8s  %s\n", mark, res.Name, dur, res.Info)
	if res.Error != nil {
		fmt.Fprint(out, output.FormatAPIError(res.Error, "    "))
	} else if res.Message != "" {
		fmt.Fprintf(out, "    Error: %s\n", res.Message)
	}
}

var errNothingToDo = errors.New("nothing to do")

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// client is the API client acting in the smoke tenant.
func (r *smokeRun) client() *api.Client { return r.c.With(r.a.token, r.tenant) }

func (r *smokeRun) steps(adminEmail string, keep bool) []smokeStep {
	var steps []smokeStep
	add := func(name string, run func(ctx context.Context) (string, error)) {
		steps = append(steps, smokeStep{name: name, run: run})
	}
	switch {
	case r.tenant != "":
		add("get tenant", func(ctx context.Context) (string, error) {
			var out tenantv1.TenantResponse
			if err := r.client().Call(ctx, "GET", "/tenants/"+pathID(r.tenant), nil, nil, &out); err != nil {
				return "", err
			}
			return out.Tenant.Name + " (" + out.Tenant.SubscriptionTier + ")", nil
		})
	case strings.HasPrefix(r.a.token, "art_"):
		add("find the API key's tenant", func(ctx context.Context) (string, error) {
			var me struct {
				TenantID string `json:"tenant_id"`
			}
			if err := r.client().Call(ctx, "GET", "/me", nil, nil, &me); err != nil {
				return "", err
			}
			r.tenant = me.TenantID
			return r.tenant, nil
		})
	default:
		add("create tenant", func(ctx context.Context) (string, error) {
			body := tenantv1.CreateRequest{Name: "smoke " + r.nonce, AdminEmail: adminEmail,
				Metadata: map[string]any{"created_by": "artcafe smoke"}}
			var out tenantv1.CreateResponse
			if err := r.c.With(r.a.token, "").Call(ctx, "POST", "/tenants", nil, body, &out); err != nil {
				return "", err
			}
			if out.TenantID == "" || out.APIKey == "" {
				return "", errors.New("the reply lacks tenant_id or api_key")
			}
			r.tenant, r.createdTenant = out.TenantID, true
			return r.tenant, nil
		})
	}
	add("register agent with a capability", func(ctx context.Context) (string, error) {
		body := agentv1.CreateBody{Name: "smoke-agent-" + r.nonce, Type: "worker", Description: "created by artcafe smoke",
			Capabilities: []agentv1.Capability{{Name: smokeCapability, Description: "answers the smoke test", Version: "1.0"}}}
		var out agentv1.CreateResponse
		if err := r.client().Call(ctx, "POST", "/agents", nil, body, &out); err != nil {
			return "", err
		}
		r.agentID = out.Agent.ID
		return r.agentID, nil
	})
	add("list agents", func(ctx context.Context) (string, error) {
		pg, err := r.a.list(ctx, r.client(), "/agents", url.Values{"capability": {smokeCapability}}, "agents", true)
		if err != nil {
			return "", err
		}
		as, err := decodeItems[agentv1.Agent](pg.items)
		if err != nil {
			return "", err
		}
		if !slices.ContainsFunc(as, func(a agentv1.Agent) bool { return a.ID == r.agentID }) {
			return "", fmt.Errorf("agent %s is not in the list of %d agents with capability %s", r.agentID, len(as), smokeCapability)
		}
		return fmt.Sprintf("%d with capability %s", len(as), smokeCapability), nil
	})
	add("get agent", func(ctx context.Context) (string, error) {
		var out agentv1.AgentResponse
		if err := r.client().Call(ctx, "GET", "/agents/"+pathID(r.agentID), nil, nil, &out); err != nil {
			return "", err
		}
		if out.Agent.ID != r.agentID || len(out.Agent.Capabilities) != 1 || out.Agent.Capabilities[0].Name != smokeCapability {
			return "", fmt.Errorf("got agent %s with capabilities %v", out.Agent.ID, out.Agent.Capabilities)
		}
		return out.Agent.Name + ", " + out.Agent.Status, nil
	})
	add("set agent status", func(ctx context.Context) (string, error) {
		var out agentv1.AgentResponse
		if err := r.client().Call(ctx, "PUT", "/agents/"+pathID(r.agentID)+"/status", nil, agentv1.SetStatusBody{Status: "idle"}, &out); err != nil {
			return "", err
		}
		if out.Agent.Status != "idle" {
			return "", fmt.Errorf("status is %q after setting idle", out.Agent.Status)
		}
		return "idle", nil
	})
	add("add SSH key (new ed25519)", func(ctx context.Context) (string, error) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", err
		}
		if r.signer, err = ssh.NewSignerFromKey(priv); err != nil {
			return "", err
		}
		pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(r.signer.PublicKey()))) + " smoke@artcafe"
		body := sshkeyv1.CreateBody{Name: "smoke-key-" + r.nonce, PublicKey: pub, AgentID: r.agentID}
		var out sshkeyv1.KeyResponse
		if err := r.client().Call(ctx, "POST", "/ssh-keys", nil, body, &out); err != nil {
			return "", err
		}
		if want := ssh.FingerprintSHA256(r.signer.PublicKey()); out.Key.Fingerprint != want {
			return "", fmt.Errorf("fingerprint %s, want %s", out.Key.Fingerprint, want)
		}
		r.keyID = out.Key.ID
		return r.keyID + " " + out.Key.Fingerprint, nil
	})
	add("list keys", func(ctx context.Context) (string, error) {
		pg, err := r.a.list(ctx, r.client(), "/ssh-keys", url.Values{"agent_id": {r.agentID}}, "keys", true)
		if err != nil {
			return "", err
		}
		ks, err := decodeItems[sshkeyv1.Key](pg.items)
		if err != nil {
			return "", err
		}
		if !slices.ContainsFunc(ks, func(k sshkeyv1.Key) bool { return k.ID == r.keyID && k.Status == "active" }) {
			return "", fmt.Errorf("key %s is not among the agent's %d keys as active", r.keyID, len(ks))
		}
		return fmt.Sprintf("%d key(s) for the agent", len(ks)), nil
	})
	add("log the agent in with its key", func(ctx context.Context) (string, error) {
		tok, err := r.a.agentLogin(ctx, r.tenant, r.keyID, r.agentID, func(ch string) (string, error) {
			return agentlogin.Sign(r.signer, ch)
		})
		if err != nil {
			return "", err
		}
		if tok.AgentID != r.agentID {
			return "", fmt.Errorf("the token names agent %s", tok.AgentID)
		}
		r.agentToken = tok.Token
		return "token until " + tok.ExpiresAt.Format(time.RFC3339), nil
	})
	add("open a WebSocket as the agent", func(ctx context.Context) (string, error) {
		return r.openWS(ctx)
	})
	add("create channel", func(ctx context.Context) (string, error) {
		body := channelv1.CreateBody{Name: "smoke-" + r.nonce, Description: "created by artcafe smoke"}
		var out channelv1.ChannelResponse
		if err := r.client().Call(ctx, "POST", "/channels", nil, body, &out); err != nil {
			return "", err
		}
		r.channelID = out.Channel.ID
		return r.channelID, nil
	})
	add("list channels", func(ctx context.Context) (string, error) {
		pg, err := r.a.list(ctx, r.client(), "/channels", nil, "channels", true)
		if err != nil {
			return "", err
		}
		cs, err := decodeItems[channelv1.Channel](pg.items)
		if err != nil {
			return "", err
		}
		if !slices.ContainsFunc(cs, func(c channelv1.Channel) bool { return c.ID == r.channelID }) {
			return "", fmt.Errorf("channel %s is not in the list of %d", r.channelID, len(cs))
		}
		return fmt.Sprintf("%d channel(s)", len(cs)), nil
	})
	add("get channel", func(ctx context.Context) (string, error) {
		var out channelv1.ChannelResponse
		if err := r.client().Call(ctx, "GET", "/channels/"+pathID(r.channelID), nil, nil, &out); err != nil {
			return "", err
		}
		if out.Channel.ID != r.channelID {
			return "", fmt.Errorf("got channel %s", out.Channel.ID)
		}
		return out.Channel.Name, nil
	})
	add("subscribe the agent to the channel", func(ctx context.Context) (string, error) {
		if err := r.send(ctx, realtimev1.Subscribe("smoke-sub", r.channelID)); err != nil {
			return "", err
		}
		f, err := r.waitFrame(ctx, func(f realtimev1.ServerFrame) bool {
			return f.ID == "smoke-sub" || (f.Type == realtimev1.TypeSubscribed && f.ChannelID == r.channelID)
		})
		if err != nil {
			return "", err
		}
		if f.Type != realtimev1.TypeSubscribed {
			return "", &api.Error{Code: f.Code, Detail: "subscribe refused: " + f.Detail}
		}
		return "subscribed", nil
	})
	add("publish a message over REST", func(ctx context.Context) (string, error) {
		body := json.RawMessage(fmt.Sprintf(`{"smoke":%q,"text":"hello from artcafe smoke"}`, r.nonce))
		var out messagev1.Published
		if err := r.client().Call(ctx, "POST", "/channels/"+pathID(r.channelID)+"/messages", nil, body, &out); err != nil {
			return "", err
		}
		r.msgID, r.msgSeq = out.MessageID, out.Seq
		return fmt.Sprintf("%s seq %d", r.msgID, r.msgSeq), nil
	})
	add("message arrives on the agent's socket", func(ctx context.Context) (string, error) {
		f, err := r.waitFrame(ctx, func(f realtimev1.ServerFrame) bool {
			return f.Type == realtimev1.TypeMessage && f.MessageID == r.msgID
		})
		if err != nil {
			return "", err
		}
		var data struct {
			Smoke string `json:"smoke"`
		}
		if err := json.Unmarshal(f.Data, &data); err != nil || data.Smoke != r.nonce || f.Seq != r.msgSeq {
			return "", fmt.Errorf("the delivered message differs: seq %d data %s", f.Seq, f.Data)
		}
		return "seq " + fmt.Sprint(f.Seq), nil
	})
	add("read it back from history", func(ctx context.Context) (string, error) {
		pg, err := r.a.list(ctx, r.client(), "/channels/"+pathID(r.channelID)+"/messages", nil, "messages", true)
		if err != nil {
			return "", err
		}
		ms, err := decodeItems[messagev1.Message](pg.items)
		if err != nil {
			return "", err
		}
		i := slices.IndexFunc(ms, func(m messagev1.Message) bool { return m.MessageID == r.msgID })
		if i < 0 {
			return "", fmt.Errorf("message %s is not in the %d stored", r.msgID, len(ms))
		}
		if !bytes.Contains(ms[i].Data, []byte(r.nonce)) {
			return "", fmt.Errorf("stored data %s", ms[i].Data)
		}
		return fmt.Sprintf("%d message(s) stored", len(ms)), nil
	})
	steps = append(steps,
		smokeStep{name: "read usage", optional: true, run: func(ctx context.Context) (string, error) {
			var out struct {
				Metrics []map[string]any `json:"metrics"`
				Totals  map[string]any   `json:"totals"`
			}
			if err := r.client().Call(ctx, "GET", "/usage-metrics", nil, nil, &out); err != nil {
				return "", err
			}
			if out.Metrics == nil || out.Totals == nil {
				return "", errors.New("the reply lacks metrics or totals")
			}
			return fmt.Sprintf("%d day(s); %s API calls in total", len(out.Metrics), number(out.Totals["api_calls"])), nil
		}},
		smokeStep{name: "read billing", optional: true, run: func(ctx context.Context) (string, error) {
			var out map[string]any
			if err := r.client().Call(ctx, "GET", "/billing", nil, nil, &out); err != nil {
				return "", err
			}
			if out["plan"] == nil {
				return "", errors.New("the reply lacks plan")
			}
			return fmt.Sprintf("plan %s, %s %s", number(out["plan"]), number(out["amount"]), number(out["currency"])), nil
		}},
	)
	add("delete the SSH key", func(ctx context.Context) (string, error) {
		r.closeWS() // the key's sessions are closed by the server anyway
		if err := r.client().Call(ctx, "DELETE", "/ssh-keys/"+pathID(r.keyID), nil, nil, nil); err != nil {
			return "", err
		}
		r.keyID = ""
		return "", nil
	})
	cleanup := func(name string, run func(ctx context.Context) (string, error)) {
		steps = append(steps, smokeStep{name: name, cleanup: true, run: func(ctx context.Context) (string, error) {
			if keep {
				return "", errNothingToDo
			}
			return run(ctx)
		}})
	}
	cleanup("clean up: delete the tenant", func(ctx context.Context) (string, error) {
		if !r.createdTenant {
			return "", errNothingToDo
		}
		r.closeWS()
		return r.tenant, r.c.With(r.a.token, "").Call(ctx, "DELETE", "/tenants/"+pathID(r.tenant), nil, nil, nil)
	})
	cleanup("clean up: delete the channel", func(ctx context.Context) (string, error) {
		if r.createdTenant || r.channelID == "" {
			return "", errNothingToDo
		}
		return r.channelID, r.client().Call(ctx, "DELETE", "/channels/"+pathID(r.channelID), nil, nil, nil)
	})
	cleanup("clean up: delete the agent", func(ctx context.Context) (string, error) {
		if r.createdTenant || r.agentID == "" {
			return "", errNothingToDo
		}
		r.closeWS()
		return r.agentID, r.client().Call(ctx, "DELETE", "/agents/"+pathID(r.agentID), nil, nil, nil)
	})
	return steps
}

// openWS opens the agent's session with ?token= (as a browser would) and waits for
// connected.
func (r *smokeRun) openWS(ctx context.Context) (string, error) {
	u, err := api.WebSocketURL(r.a.api, url.Values{realtimev1.QueryToken: {r.agentToken}})
	if err != nil {
		return "", err
	}
	dctx, cancel := context.WithTimeout(ctx, r.a.timeout)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, u, nil)
	if err != nil {
		if resp != nil && resp.StatusCode != 101 {
			var body bytes.Buffer
			if resp.Body != nil {
				_, _ = body.ReadFrom(resp.Body)
			}
			return "", api.ParseError(resp.StatusCode, resp.Header, body.Bytes())
		}
		return "", err
	}
	conn.SetReadLimit(2 * realtimev1.MaxFrameBytes)
	r.ws = conn
	readCtx, stop := context.WithCancel(context.Background())
	r.stopWS = stop
	r.frames = make(chan realtimev1.ServerFrame, 64)
	r.closingWS = make(chan struct{})
	closing := r.closingWS
	go func() {
		defer close(r.frames)
		for {
			_, b, err := conn.Read(readCtx)
			if err != nil {
				return
			}
			var f realtimev1.ServerFrame
			if json.Unmarshal(b, &f) != nil {
				continue
			}
			select {
			case r.frames <- f:
			case <-closing: // closing: read on to the end of the handshake, keep nothing
			case <-readCtx.Done():
				return
			}
		}
	}()
	f, err := r.waitFrame(ctx, func(f realtimev1.ServerFrame) bool { return f.Type == realtimev1.TypeConnected })
	if err != nil {
		return "", err
	}
	if f.AgentID != r.agentID || f.TenantID != r.tenant {
		return "", fmt.Errorf("connected as agent %q in tenant %q", f.AgentID, f.TenantID)
	}
	return "session " + f.SessionID, nil
}

// waitFrame returns the first frame that matches, skipping others, within 10 s.
func (r *smokeRun) waitFrame(ctx context.Context, match func(realtimev1.ServerFrame) bool) (realtimev1.ServerFrame, error) {
	if r.frames == nil {
		return realtimev1.ServerFrame{}, errors.New("no WebSocket is open")
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case f, ok := <-r.frames:
			if !ok {
				return f, errors.New("the WebSocket closed")
			}
			if match(f) {
				return f, nil
			}
		case <-t.C:
			return realtimev1.ServerFrame{}, errors.New("no such frame within 10s")
		case <-ctx.Done():
			return realtimev1.ServerFrame{}, ctx.Err()
		}
	}
}

func (r *smokeRun) closeWS() {
	if r.ws == nil {
		return
	}
	close(r.closingWS)
	_ = r.ws.Close(websocket.StatusNormalClosure, "smoke done")
	r.stopWS()
	r.ws = nil
}

func (r *smokeRun) send(ctx context.Context, f realtimev1.ClientFrame) error {
	if r.ws == nil {
		return errors.New("no WebSocket is open")
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.ws.Write(wctx, websocket.MessageText, b)
}
