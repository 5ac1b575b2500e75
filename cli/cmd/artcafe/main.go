// Command artcafe is the command-line client of ArtCafe PubSub: everyday commands for
// tenants, members, agents, SSH keys, agent login, channels, publishing, live
// subscriptions, history and usage, and `artcafe smoke`, which proves a deployment works.
// `artcafe --help` lists the commands; every command has --help with an example.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/artcafe-ai/pubsub/cli/internal/command"
)

func main() {
	// Ctrl-C (or SIGTERM) cancels the context: subscribe closes its session normally and
	// exits 0; other commands stop their request. A second Ctrl-C kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // restore the default handling, so a second signal ends the process
	}()
	os.Exit(command.Run(ctx, os.Args[1:], command.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv, Now: time.Now}))
}
