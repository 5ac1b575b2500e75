// Command infragen writes the CloudFormation templates that follow from the code: the
// DynamoDB tables (names from store.ServiceTables, keys and TTL from
// store.TableDefinition) and the ECS services (one per component, each task role
// allowed only its own table). `go run ./scripts/infragen [-dir infra]`; a test fails
// when the committed templates differ.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/artcafe-ai/pubsub/scripts/internal/cfn"
)

func main() {
	dir := flag.String("dir", "infra", "where the templates go")
	flag.Parse()
	files, err := cfn.Templates()
	if err == nil {
		for name, text := range files {
			if err = os.WriteFile(filepath.Join(*dir, name), []byte(text), 0o644); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "infragen: %v\n", err)
		os.Exit(1)
	}
}
