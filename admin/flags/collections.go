package flags

// The collections of flags (see package store):
//
//	flag-sets/<org>/<project>   environment slug -> FlagSet
//	flag-set-versions/<org>/<project>/<env>   zero-padded version -> Version
//	testing-sessions/<org>      session id -> TestingSession
//
// A written flag set publishes its [Ref] on topic [Topic], which every
// instance's flag-set registry listens to.
func colFlagSets(org, project string) string { return "flag-sets/" + org + "/" + project }

func colVersions(r Ref) string {
	return "flag-set-versions/" + r.OrgID + "/" + r.Project + "/" + r.Environment
}

func colSessions(org string) string { return "testing-sessions/" + org }

// colLegacySessions held every organization's sessions in one collection,
// before they were kept per organization; the sweep deletes what is left.
const colLegacySessions = "testing-sessions"

// Topic is the change-feed topic on which a changed flag set is published,
// as "<org>/<project>/<environment>".
const Topic = "flags"

// SessionTopic is the change-feed topic on which a testing session whose
// overrides changed, or that ended, is published, as "<org>/<id>": the
// event streams that named it refetch.
const SessionTopic = "testing-sessions"

// SessionEvent is a session's payload on SessionTopic.
func SessionEvent(org, id string) string { return org + "/" + id }
