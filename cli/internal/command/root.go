// Package command is the artcafe command tree (cobra): global flags and environment,
// one file per resource, the smoke test and the live subscription. Run is the whole
// program; main only wires the process to it.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/artcafe-ai/pubsub/cli/internal/api"
	"github.com/artcafe-ai/pubsub/cli/internal/output"
)

// Environment variables the global flags default to.
const (
	EnvAPI    = "ARTCAFE_API"
	EnvToken  = "ARTCAFE_TOKEN"
	EnvTenant = "ARTCAFE_TENANT"
)

// DefaultAPI is the local stack's API (make run).
const DefaultAPI = "http://127.0.0.1:8000/api/v1"

// Exit codes.
const (
	ExitOK    = 0
	ExitFail  = 1 // an API error, a failed smoke step, a network error
	ExitUsage = 2 // a wrong flag or argument
)

// IO is the process around the program.
type IO struct {
	In       io.Reader
	Out, Err io.Writer
	Getenv   func(string) string
	Now      func() time.Time
}

// app is one run of the program: the global flags and the printer.
type app struct {
	io      IO
	api     string
	token   string
	tenant  string
	json    bool
	timeout time.Duration
	p       *output.Printer
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Run runs the CLI with args (without the program name) and returns the exit code.
func Run(ctx context.Context, args []string, sys IO) int {
	if sys.Now == nil {
		sys.Now = time.Now
	}
	a := &app{io: sys}
	a.p = &output.Printer{Out: sys.Out, Err: sys.Err, Now: sys.Now}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(sys.In)
	root.SetOut(sys.Out)
	root.SetErr(sys.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(sys.Err, "Error: %v\nRun '%s --help' for usage.\n", ue.error, commandPath(root, args))
		return ExitUsage
	}
	var ex exitError
	if errors.As(err, &ex) {
		return ex.code // already reported
	}
	a.p.JSON = a.json
	a.p.Error(err)
	return ExitFail
}

// exitError ends the program with code after the command reported the failure itself.
type exitError struct{ code int }

func (e exitError) Error() string { return "exit " + strconv.Itoa(e.code) }

// commandPath names the command args selected, for the usage hint.
func commandPath(root *cobra.Command, args []string) string {
	if c, _, err := root.Find(args); err == nil && c != nil {
		return c.CommandPath()
	}
	return root.Name()
}

func (a *app) rootCommand() *cobra.Command {
	env := a.io.Getenv
	apiDefault := env(EnvAPI)
	if apiDefault == "" {
		apiDefault = DefaultAPI
	}
	root := &cobra.Command{
		Use:   "artcafe",
		Short: "Command-line client of ArtCafe PubSub",
		Long: `artcafe talks to an ArtCafe PubSub deployment: tenants, members, agents, SSH keys,
agent login, channels, publishing, live subscriptions, history, usage, and a smoke test
that proves a deployment works end to end.

Global flags default to the environment: --api-endpoint to $ARTCAFE_API, --token to
$ARTCAFE_TOKEN, --tenant-id to $ARTCAFE_TENANT. A token starting with art_ is sent as a
tenant API key (x-api-key), any other as a bearer token (a user or agent JWT).

Output is for people (aligned tables, relative times) unless --json is given: then the
API's JSON is printed as it came, and errors are one JSON line on stderr.
Exit codes: 0 success, 1 failure (the API's detail, code and request_id are printed),
2 a wrong flag or argument.`,
		Example: `  export ARTCAFE_TOKEN="$(make -s token)"
  artcafe whoami
  artcafe tenants create --name Acme --admin-email me@example.com
  artcafe smoke --api-endpoint http://localhost:8000/api/v1`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, as []string) error {
			if len(as) > 0 {
				return usagef("unknown command %q", as[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			a.p.JSON = a.json
			if !cmd.Flags().Changed("token") {
				a.token = a.io.Getenv(EnvToken)
			}
			if a.timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			u, err := url.Parse(a.api)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usagef("--api-endpoint %q is not an http(s) URL like %s", a.api, DefaultAPI)
			}
			a.api = strings.TrimRight(a.api, "/")
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	f := root.PersistentFlags()
	f.StringVar(&a.api, "api-endpoint", apiDefault, "the API's base URL, …/api/v1 (env "+EnvAPI+")")
	// The token's default is read in PersistentPreRunE, so --help never prints it.
	f.StringVar(&a.token, "token", "", "user JWT, agent token or tenant API key art_… (default $"+EnvToken+")")
	f.StringVar(&a.tenant, "tenant-id", env(EnvTenant), "tenant to act in, sent as x-tenant-id (env "+EnvTenant+")")
	f.BoolVar(&a.json, "json", false, "print JSON (the API's replies) instead of tables")
	f.DurationVar(&a.timeout, "timeout", 30*time.Second, "deadline of each HTTP request")

	root.AddCommand(
		a.tenantsCommand(), a.membersCommand(), a.agentsCommand(), a.keysCommand(), a.loginCommand(),
		a.channelsCommand(), a.publishCommand(), a.subscribeCommand(), a.historyCommand(),
		a.usageCommand(), a.billingCommand(), a.whoamiCommand(), a.smokeCommand(),
	)
	return root
}

// client is the API client of the global flags.
func (a *app) client() *api.Client { return api.New(a.api, a.token, a.tenant, a.timeout) }

// needTenant returns --tenant-id or a usage error naming why it is needed.
func (a *app) needTenant() (string, error) {
	if a.tenant == "" {
		return "", usagef("--tenant-id (or $%s) is required here", EnvTenant)
	}
	return a.tenant, nil
}

// requireFlags makes flags required (a missing one is a usage error, exit 2).
func requireFlags(c *cobra.Command, names ...string) {
	prev := c.PreRunE
	c.PreRunE = func(cmd *cobra.Command, as []string) error {
		for _, n := range names {
			if !cmd.Flags().Changed(n) {
				return usagef("--%s is required", n)
			}
		}
		if prev != nil {
			return prev(cmd, as)
		}
		return nil
	}
}

// args checks the number of positional arguments (a mistake there is a usage error).
func args(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, as []string) error {
		switch {
		case len(as) < lo && lo == hi:
			return usagef("%s needs %d argument(s), got %d", cmd.CommandPath(), lo, len(as))
		case len(as) < lo:
			return usagef("%s needs at least %d argument(s), got %d", cmd.CommandPath(), lo, len(as))
		case hi >= 0 && len(as) > hi:
			return usagef("%s takes at most %d argument(s), got %d", cmd.CommandPath(), hi, len(as))
		}
		return nil
	}
}

// group is a parent command without an action of its own.
func group(use, short, example string, children ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Example: example,
		Args: func(cmd *cobra.Command, as []string) error {
			if len(as) > 0 {
				return usagef("unknown command %q for %s", as[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	c.AddCommand(children...)
	return c
}

// page is one page of a list reply: its items and next_token.
type page struct {
	items []json.RawMessage
	next  string
	raw   []byte
}

// list reads a list route: one page, or every page with all (next_token followed).
func (a *app) list(ctx context.Context, c *api.Client, path string, q url.Values, key string, all bool) (page, error) {
	var out page
	if q == nil {
		q = url.Values{}
	}
	for {
		rep, err := c.Do(ctx, api.Request{Method: "GET", Path: path, Query: q})
		if err != nil {
			return out, err
		}
		var m map[string]json.RawMessage
		if err := rep.Decode(&m); err != nil {
			return out, err
		}
		var items []json.RawMessage
		if err := json.Unmarshal(m[key], &items); err != nil && m[key] != nil {
			return out, fmt.Errorf("the reply's %q is not a list: %w", key, err)
		}
		var next *string
		_ = json.Unmarshal(m["next_token"], &next)
		out.items = append(out.items, items...)
		out.raw = rep.Body
		out.next = ""
		if next != nil {
			out.next = *next
		}
		if !all || out.next == "" {
			break
		}
		q.Set("next_token", out.next)
	}
	if all {
		// The merged pages, shaped like one reply.
		raw, err := json.Marshal(map[string]any{key: nonNil(out.items), "next_token": nil})
		if err != nil {
			return out, err
		}
		out.raw = raw
	}
	return out, nil
}

func nonNil(items []json.RawMessage) []json.RawMessage {
	if items == nil {
		return []json.RawMessage{}
	}
	return items
}

// decodeItems decodes list items into T.
func decodeItems[T any](items []json.RawMessage) ([]T, error) {
	out := make([]T, 0, len(items))
	for _, it := range items {
		var v T
		if err := json.Unmarshal(it, &v); err != nil {
			return nil, fmt.Errorf("a list item is not the expected JSON: %w", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// printList prints a list reply: its JSON, or a table and a hint when more pages exist.
func (a *app) printList(pg page, table func() error) error {
	if a.json {
		return a.p.RawJSON(pg.raw)
	}
	if err := table(); err != nil {
		return err
	}
	if pg.next != "" {
		a.p.Note("(more: add --all, or --next-token %s)", pg.next)
	}
	return nil
}

// listFlags are the paging flags of every list command.
type listFlags struct {
	limit int
	next  string
	all   bool
}

func (l *listFlags) bind(c *cobra.Command) {
	c.Flags().IntVar(&l.limit, "limit", 0, "page size, 1–100 (default: the API's, 50)")
	c.Flags().StringVar(&l.next, "next-token", "", "continue from a previous page's next_token")
	c.Flags().BoolVar(&l.all, "all", false, "follow next_token and list every page")
}

func (l *listFlags) query() url.Values {
	q := url.Values{}
	if l.limit != 0 {
		q.Set("limit", strconv.Itoa(l.limit))
	}
	if l.next != "" {
		q.Set("next_token", l.next)
	}
	return q
}

// printRaw prints a single-resource reply: its JSON with --json, else fields().
func (a *app) printRaw(raw []byte, fields func() error) error {
	if a.json {
		return a.p.RawJSON(raw)
	}
	return fields()
}

// when formats a time for a field line: RFC 3339 and relative.
func (a *app) when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339) + " (" + output.Ago(t, a.io.Now()) + ")"
}

func (a *app) ago(t *time.Time) string { return output.Ago(t, a.io.Now()) }

func ptr[T any](v T) *T { return &v }

// pathID escapes an id for a path segment.
func pathID(id string) string { return url.PathEscape(id) }
