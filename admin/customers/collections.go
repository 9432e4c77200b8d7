package customers

// The collection of identities (see package store):
//
//	identities/<org>/<project>   identity slug -> Identity
//
// A project's identities are one collection, so that listing them reads
// only theirs and deleting the project drops them at once. A change to an
// identity (put, delete, its project's deletion) publishes its [Ref] on
// topic [Topic], so that every instance drops what it cached of it.
func colIdentities(org, project string) string { return "identities/" + org + "/" + project }

// Topic is the change-feed topic on which a changed identity is published,
// as "<org>/<project>/<slug>" (see [Ref]).
const Topic = "identities"

// Ref names an identity across organizations, as it is published on
// [Topic]: "<org>/<project>/<slug>". None of the three holds a slash.
func Ref(org, project, slug string) string { return org + "/" + project + "/" + slug }
