package identity

// The collections of identity (see package store). A person logs in with an
// e-mail address and a password; the password belongs to the address (one
// account), which may be a member of several organizations; a login
// session acts as one membership.
//
//	accounts                           lower-cased e-mail -> Account
//	members/<org>                      member id -> Member
//	member-emails/<org>                lower-cased e-mail -> {org_id, member_id}
//	login-sessions                     SHA-256 of the session token -> LoginSession
//	login-sessions-of/<org>/<member>   SHA-256 of a session token -> when it was opened
//	invites                            SHA-256 of the invitation token -> Invite
//	invites-of/<org>                   SHA-256 of an invitation token -> when it expires
//
// Login sessions and invitations are found by token, so they are kept by
// digest across organizations; the "-of" collections index them per member
// and per organization, so that ending a member's sessions or withdrawing
// their invitations reads only theirs, and so that their number is bounded.
const (
	colAccounts      = "accounts"
	colLoginSessions = "login-sessions"
	colInvites       = "invites"
)

func colMembers(org string) string      { return "members/" + org }
func colMemberEmails(org string) string { return "member-emails/" + org }

func colSessionsOf(org, member string) string { return "login-sessions-of/" + org + "/" + member }

func colInvitesOf(org string) string { return "invites-of/" + org }
