package testtable

import (
	"testing"

	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// The DynamoDB leg of `make test` must really run on DynamoDB.
func TestBackendFollowsTheEnvironment(t *testing.T) {
	if got, want := store.Backend(New(t)), Backend(); got != want {
		t.Fatalf("tables open on %s, want %s", got, want)
	}
	t.Logf("backend: %s", Backend())
}
