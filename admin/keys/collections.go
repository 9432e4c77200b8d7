package keys

// The collections of keys (see package store):
//
//	keys/<org>     key id -> apikey.Record
//	key-digests    hex SHA-256 of a secret -> {org_id, key_id}
//	key-use        key id -> last use (RFC 3339)
//
// A change to a key publishes its id on topic [Topic], which every
// instance's key cache listens to.
const (
	colDigests = "key-digests"
	colKeyUse  = "key-use"
)

func colKeys(org string) string { return "keys/" + org }

// Topic is the change-feed topic on which a changed key's id is published
// (revocation, rotation, update, narrowing, deletion).
const Topic = "keys"
