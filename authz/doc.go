// Package authz is FlagBridge's one authorization decision: whether a
// [Principal] (an API key, or a member logged in to the dashboard) may do
// what a request [Need]s, on the part of an organization it acts on (a
// [Scope]). [Permits] is the only function that decides it. The edge asks
// it for every route, with the project and environment the path names; the
// services ask it again for what only they know (the key a request rotates,
// the testing session it changes, the environment an evaluation names, the
// key a request hands out), and list only what it admits. No other code
// compares projects, environments, resources or permissions.
//
// A scope is a part of one organization: all of it, a list of its projects
// (a Scoped key), one project, or one environment of a project. A principal
// may act on a target when its own scope covers the target's: an
// organization-wide key covers every project, a project key its project and
// each of its environments, an environment key only that environment.
package authz
