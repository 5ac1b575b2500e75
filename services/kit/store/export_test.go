package store

import bolt "go.etcd.io/bbolt"

// RawBoltKeys counts the keys in an embedded table, expired items included, so tests
// can see what the sweeper removed.
func RawBoltKeys(t Table) (int, error) {
	bt := t.(*boltTable)
	n := 0
	err := bt.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bt.bucket).Stats().KeyN
		return nil
	})
	return n, err
}

// SweepBolt runs one sweep of an embedded table now and returns how many items it
// deleted.
func SweepBolt(t Table) (int, error) { return t.(*boltTable).sweep() }

// ClassifyDynamoErr is dynamoErr, for tests of the error mapping.
var ClassifyDynamoErr = dynamoErr
