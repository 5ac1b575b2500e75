package store

// The services' tables (SPEC §7), one per service: the name a service opens, the file
// <DATA_DIR>/<name>.db of the embedded store and, after DYNAMODB_TABLE_PREFIX, its
// DynamoDB table. The infra templates are checked against these and TableDefinition.
const (
	TableTenants  = "tenants"
	TableAgents   = "agents"
	TableSSHKeys  = "ssh-keys"
	TableChannels = "channels"
	TableUsage    = "usage"
)

// ServiceTables maps each service to its table.
func ServiceTables() map[string]string {
	return map[string]string{
		"tenant":  TableTenants,
		"agent":   TableAgents,
		"sshkey":  TableSSHKeys,
		"channel": TableChannels,
		"usage":   TableUsage,
	}
}
