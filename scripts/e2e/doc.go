// Package e2e is the black-box end-to-end test of the local stack: it builds the real
// binaries, starts them as processes (through the launcher, or one by one for the
// resilience and channel-restart tests) and drives the HTTP API of SPEC §3, §4.2–§4.6,
// §4.8 and §13: the tenant story, then agents, SSH keys and agent login (with keys
// generated in the test and the agent-login example program), then channels and
// messages over REST and WebSockets (two agents and a dashboard, presence, tenant
// isolation), and the browser console in headless Chromium (chromedp).
//
// Run it from the repository root with `go test ./scripts/e2e/...` (or `make test-e2e`,
// which also runs the DynamoDB legs through scripts/dynalite/with-dynalite.sh and
// installs Chromium when it is missing). The test builds the binaries itself into a
// temporary directory. The console test needs Chromium (CHROME_BIN, else
// /usr/bin/chromium); without one it is skipped, unless CI is set.
package e2e
