package command

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/artcafe-ai/pubsub/cli/internal/api"
	"github.com/artcafe-ai/pubsub/cli/internal/output"
	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
)

// maxPublishBytes bounds what publish reads; the API's own limit (64 KiB by default)
// answers 413 below it.
const maxPublishBytes = 1 << 20

func (a *app) channelsCommand() *cobra.Command {
	var lf listFlags
	list := &cobra.Command{
		Use: "list", Short: "List channels", Args: args(0, 0),
		Example: "  artcafe channels list\n  artcafe channels list --all --json | jq -r '.channels[].id'",
		RunE: func(cmd *cobra.Command, _ []string) error {
			pg, err := a.list(cmd.Context(), a.client(), "/channels", lf.query(), "channels", lf.all)
			if err != nil {
				return err
			}
			return a.printList(pg, func() error {
				cs, err := decodeItems[channelv1.Channel](pg.items)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(cs))
				for _, c := range cs {
					rows = append(rows, []string{c.ID, c.Name, c.Type, strconv.FormatInt(c.SubscriberCount, 10),
						strconv.FormatInt(c.TotalMessages, 10), a.ago(c.LastMessageAt), a.ago(&c.CreatedAt)})
				}
				a.p.Table([]string{"ID", "NAME", "TYPE", "SUBSCRIBERS", "MESSAGES", "LAST MESSAGE", "CREATED"}, rows)
				return nil
			})
		},
	}
	lf.bind(list)

	var body channelv1.CreateBody
	var maxMessages, maxAge int64
	create := &cobra.Command{
		Use: "create", Short: "Create a channel", Args: args(0, 0),
		Example: "  artcafe channels create --name alerts\n  artcafe channels create --name audit --type private --max-messages 1000 --max-age 86400",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxMessages != 0 || maxAge != 0 {
				body.History = &channelv1.History{MaxMessages: maxMessages, MaxAgeSeconds: maxAge}
			}
			return a.channelCall(cmd, "POST", "/channels", body)
		},
	}
	create.Flags().StringVar(&body.Name, "name", "", "the channel's name (required; names need not be unique)")
	create.Flags().StringVar(&body.Description, "description", "", "what the channel is for")
	create.Flags().StringVar(&body.Type, "type", "", "public (default) or private")
	create.Flags().Int64Var(&maxMessages, "max-messages", 0, "history: keep at most this many messages (default: the plan's bound)")
	create.Flags().Int64Var(&maxAge, "max-age", 0, "history: keep messages this many seconds (default: the plan's bound)")
	requireFlags(create, "name")

	get := &cobra.Command{
		Use: "get CHANNEL_ID", Short: "Show a channel", Args: args(1, 1), Example: "  artcafe channels get 01J…",
		RunE: func(cmd *cobra.Command, as []string) error {
			return a.channelCall(cmd, "GET", "/channels/"+pathID(as[0]), nil)
		},
	}
	del := &cobra.Command{
		Use: "delete CHANNEL_ID", Short: "Delete a channel (its history is purged, subscribers are told)", Args: args(1, 1),
		Example: "  artcafe channels delete 01J…",
		RunE: func(cmd *cobra.Command, as []string) error {
			if _, err := a.client().Do(cmd.Context(), api.Request{Method: "DELETE", Path: "/channels/" + pathID(as[0])}); err != nil {
				return err
			}
			a.done("deleted channel %s", as[0])
			return nil
		},
	}
	return group("channels", "Channels: list, create, get, delete", "  artcafe channels create --name alerts", list, create, get, del)
}

func (a *app) channelCall(cmd *cobra.Command, method, path string, body any) error {
	rep, err := a.client().Do(cmd.Context(), api.Request{Method: method, Path: path, Body: body})
	if err != nil {
		return err
	}
	return a.printRaw(rep.Body, func() error {
		var out channelv1.ChannelResponse
		if err := rep.Decode(&out); err != nil {
			return err
		}
		c := out.Channel
		a.p.Fields(
			[2]string{"id", c.ID}, [2]string{"name", c.Name}, [2]string{"type", c.Type}, [2]string{"status", c.Status},
			[2]string{"description", c.Description},
			[2]string{"history", fmt.Sprintf("%d messages / %s", c.History.MaxMessages, time.Duration(c.History.MaxAgeSeconds)*time.Second)},
			[2]string{"subscribers", strconv.FormatInt(c.SubscriberCount, 10)},
			[2]string{"messages", strconv.FormatInt(c.TotalMessages, 10)},
			[2]string{"last_message", a.when(c.LastMessageAt)}, [2]string{"created", a.when(&c.CreatedAt)},
		)
		return nil
	})
}

func (a *app) publishCommand() *cobra.Command {
	var idem string
	c := &cobra.Command{
		Use:   "publish CHANNEL_ID JSON|-",
		Short: "Publish a JSON object to a channel (from the argument, or - for stdin)",
		Long: `publish stores one message (a JSON object, sent byte for byte) in a channel and prints
its message_id and seq once it is stored. With --idempotency-key, a retry within two
minutes publishes nothing new and returns the first result.`,
		Example: `  artcafe publish 01J… '{"text": "hello"}'
  echo '{"level": "warn", "msg": "disk 91%"}' | artcafe publish 01J… -
  artcafe publish 01J… @- --idempotency-key order-42 < event.json`,
		Args: args(2, 2),
		RunE: func(cmd *cobra.Command, as []string) error {
			var data []byte
			switch as[1] {
			case "-", "@-":
				b, err := readInput(a.io.In, "-", maxPublishBytes)
				if err != nil {
					return err
				}
				data = b
			default:
				data = []byte(as[1])
			}
			data = []byte(strings.TrimSpace(string(data)))
			if !json.Valid(data) {
				return usagef("the message is not valid JSON (give a JSON object, e.g. '{\"text\":\"hi\"}')")
			}
			req := api.Request{Method: "POST", Path: "/channels/" + pathID(as[0]) + "/messages", Body: json.RawMessage(data)}
			if idem != "" {
				req.Header = map[string][]string{"Idempotency-Key": {idem}}
			}
			rep, err := a.client().Do(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.printRaw(rep.Body, func() error {
				var out messagev1.Published
				if err := rep.Decode(&out); err != nil {
					return err
				}
				note := ""
				if rep.Header.Get("Idempotent-Replayed") == "true" {
					note = " (replayed: this key already published it)"
				}
				fmt.Fprintf(a.io.Out, "Published %s seq %d at %s%s\n", out.MessageID, out.Seq, out.Timestamp.UTC().Format(time.RFC3339Nano), note)
				return nil
			})
		},
	}
	c.Flags().StringVar(&idem, "idempotency-key", "", "a key (1–255 printable ASCII) that makes retries safe")
	return c
}

func (a *app) historyCommand() *cobra.Command {
	var lf listFlags
	var after, before uint64
	var last int
	c := &cobra.Command{
		Use: "history CHANNEL_ID", Short: "Read a channel's stored messages, oldest first", Args: args(1, 1),
		Example: "  artcafe history 01J…\n  artcafe history 01J… --after-seq 120 --all --json\n  artcafe history 01J… --last 10",
		RunE: func(cmd *cobra.Command, as []string) error {
			q := lf.query()
			if after != 0 {
				q.Set("after_seq", strconv.FormatUint(after, 10))
			}
			if before != 0 {
				q.Set("before_seq", strconv.FormatUint(before, 10))
			}
			if last > 0 {
				if after != 0 || before != 0 {
					return usagef("--last goes alone, without --after-seq or --before-seq")
				}
				q.Set("before_seq", strconv.FormatUint(math.MaxInt64, 10))
				q.Set("limit", strconv.Itoa(last))
			}
			pg, err := a.list(cmd.Context(), a.client(), "/channels/"+pathID(as[0])+"/messages", q, "messages", lf.all && last == 0)
			if err != nil {
				return err
			}
			return a.printList(pg, func() error {
				ms, err := decodeItems[messagev1.Message](pg.items)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(ms))
				for _, m := range ms {
					rows = append(rows, []string{strconv.FormatUint(m.Seq, 10), m.MessageID, a.ago(&m.Timestamp),
						m.Sender.Type + ":" + m.Sender.ID, output.Short(string(m.Data), 60)})
				}
				a.p.Table([]string{"SEQ", "MESSAGE", "SENT", "SENDER", "DATA"}, rows)
				return nil
			})
		},
	}
	lf.bind(c)
	c.Flags().Uint64Var(&after, "after-seq", 0, "only messages after this seq")
	c.Flags().Uint64Var(&before, "before-seq", 0, "only messages before this seq")
	c.Flags().IntVar(&last, "last", 0, "the last N stored messages")
	return c
}

// lastSeq is the seq of the newest stored message of a channel (0 when none is stored):
// where a live subscription starts so that a reconnect can resume with no gap.
func lastSeq(cmd *cobra.Command, c *api.Client, channel string) (uint64, error) {
	q := url.Values{"before_seq": {strconv.FormatUint(math.MaxInt64, 10)}, "limit": {"1"}}
	var out struct {
		Messages []messagev1.Message `json:"messages"`
	}
	if err := c.Call(cmd.Context(), "GET", "/channels/"+pathID(channel)+"/messages", q, nil, &out); err != nil {
		return 0, err
	}
	if len(out.Messages) == 0 {
		return 0, nil
	}
	return out.Messages[len(out.Messages)-1].Seq, nil
}
