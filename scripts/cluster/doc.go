// Package cluster is the scale-out run of issue 6 (`make test-cluster`): a three-node
// NATS cluster with JetStream at R3, two replicas of every service on DynamoDB (dynalite)
// and two gateways, as real processes on loopback, loaded through both gateways while one
// replica of each service and one NATS node are killed with SIGKILL and started again.
// The package holds only the test; it runs under scripts/dynalite/with-dynalite.sh.
package cluster
