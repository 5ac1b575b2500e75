// Package e2e is the black-box end-to-end test of the local stack: it builds the real
// binaries, starts them as processes (through the launcher, or one by one for the
// resilience test) and drives the HTTP API of SPEC §3, §4.2–§4.4, §4.8 and §13: the
// tenant story, then agents, SSH keys and agent login (with keys generated in the test
// and the agent-login example program).
//
// Run it from the repository root with `go test ./scripts/e2e/...` (or `make test-e2e`,
// which also runs the DynamoDB leg through scripts/dynalite/with-dynalite.sh). The test
// builds the binaries itself into a temporary directory, so it needs nothing but Go.
package e2e
