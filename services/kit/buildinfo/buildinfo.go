// Package buildinfo carries what a binary knows about its own build: the semver version
// and the git commit, stamped in by the Makefile with
// -ldflags "-X github.com/artcafe-ai/pubsub/services/kit/buildinfo.Version=… -X …GitSHA=…".
package buildinfo

// These are variables, not constants, only because -ldflags -X can set nothing else;
// nothing assigns them at run time.
var (
	// Version is the semver of the build ("0.1.0-dev" for an unstamped build, which is
	// still valid semver so micro accepts it).
	Version = "0.1.0-dev"
	// GitSHA is the commit the binary was built from.
	GitSHA = "unknown"
)
