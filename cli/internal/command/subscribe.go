package command

import (
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/artcafe-ai/pubsub/cli/internal/api"
	"github.com/artcafe-ai/pubsub/cli/internal/stream"
)

func (a *app) subscribeCommand() *cobra.Command {
	var since int64
	var buffer int
	c := &cobra.Command{
		Use:   "subscribe CHANNEL_ID...",
		Short: "Stream a channel's messages live, one JSON line each, until Ctrl-C",
		Long: `subscribe opens the WebSocket (GET /api/v1/ws), subscribes to the channels and prints
every message as one JSON line on stdout (notes go to stderr). Without --since-seq it
starts after the newest stored message; with --since-seq N it first replays the stored
messages after N. When the connection drops it reconnects and resumes after the last
message printed on each channel (since_seq), so nothing is missed and nothing is printed
twice. If the terminal cannot keep up, it lets the connection go instead of blocking it
and resumes once the backlog is printed. Ctrl-C closes the session normally (1000) and
exits 0.`,
		Example: `  artcafe subscribe 01J…
  artcafe subscribe 01JA… 01JB… --since-seq 0 | jq -c .data
  artcafe subscribe 01J… --token "$AGENT_TOKEN"   # as an agent: it shows online meanwhile`,
		Args: args(1, -1),
		RunE: func(cmd *cobra.Command, as []string) error {
			c := a.client()
			start := map[string]uint64{}
			for _, ch := range as {
				if cmd.Flags().Changed("since-seq") {
					if since < 0 {
						return usagef("--since-seq must be 0 or more")
					}
					start[ch] = uint64(since)
					continue
				}
				seq, err := lastSeq(cmd, c, ch)
				if err != nil {
					return err
				}
				start[ch] = seq
			}
			u, err := api.WebSocketURL(a.api, url.Values{})
			if err != nil {
				return err
			}
			h := http.Header{}
			api.SetAuth(h, a.token, a.tenant)
			h.Set("User-Agent", "artcafe-cli")
			a.p.Note("listening on %d channel(s); Ctrl-C to stop", len(as))
			return stream.Run(cmd.Context(), stream.Options{
				URL: u, Header: h, Channels: as, Since: start, Out: a.io.Out, Buffer: buffer,
				Log: func(format string, args ...any) {
					a.p.Note("[%s] "+format, append([]any{time.Now().Format("15:04:05")}, args...)...)
				},
			})
		},
	}
	c.Flags().Int64Var(&since, "since-seq", 0, "replay the stored messages after this seq first (0: all stored)")
	c.Flags().IntVar(&buffer, "buffer", 1024, "messages held for a slow terminal before the connection is let go")
	return c
}
