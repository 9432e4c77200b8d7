package tenancy

// The collections of tenancy, each a set of JSON documents (see package
// store):
//
//	orgs                        organization id -> Organization
//	projects/<org>              project slug -> Project
//	environments/<org>/<slug>   environment slug -> Environment
const colOrgs = "orgs"

func colProjects(org string) string           { return "projects/" + org }
func colEnvironments(org, proj string) string { return "environments/" + org + "/" + proj }
