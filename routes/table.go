package routes

import (
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
)

// The route names.
const (
	ListProjects      Name = "listProjects"
	CreateProject     Name = "createProject"
	GetProject        Name = "getProject"
	DeleteProject     Name = "deleteProject"
	ListEnvironments  Name = "listEnvironments"
	CreateEnvironment Name = "createEnvironment"
	ListKeys          Name = "listKeys"
	CreateKey         Name = "createKey"
	GetKey            Name = "getKey"
	UpdateKey         Name = "updateKey"
	RevokeKey         Name = "revokeKey"
	RotateKey         Name = "rotateKey"
	ListIdentities    Name = "listIdentities"
	GetIdentity       Name = "getIdentity"
	PutIdentity       Name = "putIdentity"
	DeleteIdentity    Name = "deleteIdentity"
	GetFlagSet        Name = "getFlagSet"
	PutFlagSet        Name = "putFlagSet"
	ListFlagVersions  Name = "listFlagVersions"
	GetFlagVersion    Name = "getFlagVersion"
	DiffFlagVersions  Name = "diffFlagVersions"
	RevertFlagSet     Name = "revertFlagSet"
	GetFlag           Name = "getFlag"
	PutFlag           Name = "putFlag"
	DeleteFlag        Name = "deleteFlag"
	ListMembers       Name = "listMembers"
	InviteMember      Name = "inviteMember"
	RemoveMember      Name = "removeMember"
	ListAuditLog      Name = "listAuditLog"
	CreateWebhook     Name = "createWebhook"
	ListWebhooks      Name = "listWebhooks"
	DeleteWebhook     Name = "deleteWebhook"
	ListDeliveries    Name = "listWebhookDeliveries"
	ReplayDelivery    Name = "replayWebhookDelivery"
	Evaluate          Name = "evaluate"
	EvaluateBatch     Name = "evaluateBatch"
	CreateSession     Name = "createSession"
	SetOverrides      Name = "setOverrides"
	DeleteSession     Name = "deleteSession"
	OFREPEvaluate     Name = "ofrepEvaluate"
	OFREPEvaluateAll  Name = "ofrepEvaluateAll"
	OFREPConfig       Name = "ofrepConfiguration"
	OFREPEvents       Name = "ofrepEvents"
	GraphQLPost       Name = "graphqlPost"
	GraphQLGet        Name = "graphqlGet"
	DashboardRoot     Name = "dashboardRoot"
	DashboardPage     Name = "dashboardPage"
	DashboardIndex    Name = "dashboardIndex"
	DashboardAsset    Name = "dashboardAsset"
	DashboardSession  Name = "dashboardSession"
	DashboardLogin    Name = "dashboardLogin"
	DashboardLogout   Name = "dashboardLogout"
	InviteLookup      Name = "inviteLookup"
	InviteAccept      Name = "inviteAccept"
)

// Capabilities that many routes share.
var (
	adminRead  = Capability{Type: apikey.Admin, Permission: apikey.Read}
	adminWrite = Capability{Type: apikey.Admin, Permission: apikey.Write}
	evaluation = Capability{Type: apikey.Live, Permission: apikey.Read}
	// clientEvaluation admits client keys too: OFREP, which browsers call.
	clientEvaluation = Capability{Type: apikey.Client, Permission: apikey.Read}
	sessions         = Capability{Type: apikey.Test, Permission: apikey.Write}
	// onProject and onEnvironment act on what the path names.
	onProject     = func(c Capability) Capability { c.Project = "project"; return c }
	onEnvironment = func(c Capability) Capability { c.Project, c.Environment = "project", "env"; return c }
	partly        = func(c Capability) Capability { c.Partial = true; return c }
	doing         = func(action string, c Capability) Capability { c.Action = action; return c }
	wholeOrg      = func(c Capability) Capability { c.Organization = true; return c }
	none          = Capability{}
)

// table is every endpoint. Evaluation and testing sessions resolve their
// project and environment from the key, headers or body: the services ask
// authz about them.
var table = []Route{
	{Name: ListProjects, Method: "GET", Pattern: "/v1/projects", Needs: adminRead},
	{Name: CreateProject, Method: "POST", Pattern: "/v1/projects", Needs: doing("create projects in", wholeOrg(adminWrite))},
	{Name: GetProject, Method: "GET", Pattern: "/v1/projects/{project}", Needs: partly(onProject(adminRead))},
	{Name: DeleteProject, Method: "DELETE", Pattern: "/v1/projects/{project}", Needs: doing("delete", onProject(adminWrite))},
	{Name: ListEnvironments, Method: "GET", Pattern: "/v1/projects/{project}/environments", Needs: partly(onProject(adminRead))},
	{Name: CreateEnvironment, Method: "POST", Pattern: "/v1/projects/{project}/environments", Needs: doing("add environments to", onProject(adminWrite))},
	{Name: ListKeys, Method: "GET", Pattern: "/v1/projects/{project}/api-keys", Needs: partly(onProject(adminRead))},
	{Name: CreateKey, Method: "POST", Pattern: "/v1/projects/{project}/api-keys", Needs: doing("create keys in", partly(onProject(adminWrite)))},
	{Name: GetKey, Method: "GET", Pattern: "/v1/api-keys/{id}", Needs: adminRead},
	{Name: UpdateKey, Method: "PATCH", Pattern: "/v1/api-keys/{id}", Needs: adminWrite},
	{Name: RevokeKey, Method: "DELETE", Pattern: "/v1/api-keys/{id}", Needs: adminWrite},
	{Name: RotateKey, Method: "POST", Pattern: "/v1/api-keys/{id}/rotate", Needs: adminWrite},
	// Identities are project-wide: an environment key of the project reads
	// them, and only a key of the whole project changes them.
	{Name: ListIdentities, Method: "GET", Pattern: "/v1/projects/{project}/identities", Needs: doing("read identities of", partly(onProject(adminRead)))},
	{Name: GetIdentity, Method: "GET", Pattern: "/v1/projects/{project}/identities/{identity}", Needs: doing("read identities of", partly(onProject(adminRead)))},
	{Name: PutIdentity, Method: "PUT", Pattern: "/v1/projects/{project}/identities/{identity}", Needs: doing("manage identities of", onProject(adminWrite))},
	{Name: DeleteIdentity, Method: "DELETE", Pattern: "/v1/projects/{project}/identities/{identity}", Needs: doing("manage identities of", onProject(adminWrite))},
	{Name: GetFlagSet, Method: "GET", Pattern: "/v1/projects/{project}/environments/{env}/flags", Needs: onEnvironment(adminRead)},
	{Name: PutFlagSet, Method: "PUT", Pattern: "/v1/projects/{project}/environments/{env}/flags", Needs: onEnvironment(adminWrite)},
	// A set's history: before GetFlag, whose {flag} would take
	// "versions" (a flag of that key is read with the whole set).
	{Name: ListFlagVersions, Method: "GET", Pattern: "/v1/projects/{project}/environments/{env}/flags/versions", Needs: onEnvironment(adminRead)},
	{Name: GetFlagVersion, Method: "GET", Pattern: "/v1/projects/{project}/environments/{env}/flags/versions/{version}", Needs: onEnvironment(adminRead)},
	{Name: DiffFlagVersions, Method: "GET", Pattern: "/v1/projects/{project}/environments/{env}/flags/versions/{version}/diff", Needs: onEnvironment(adminRead)},
	{Name: RevertFlagSet, Method: "POST", Pattern: "/v1/projects/{project}/environments/{env}/flags/revert", Needs: onEnvironment(adminWrite)},
	{Name: GetFlag, Method: "GET", Pattern: "/v1/projects/{project}/environments/{env}/flags/{flag}", Needs: onEnvironment(adminRead)},
	{Name: PutFlag, Method: "PUT", Pattern: "/v1/projects/{project}/environments/{env}/flags/{flag}", Needs: onEnvironment(adminWrite)},
	{Name: DeleteFlag, Method: "DELETE", Pattern: "/v1/projects/{project}/environments/{env}/flags/{flag}", Needs: onEnvironment(adminWrite)},
	{Name: ListMembers, Method: "GET", Pattern: "/v1/members", Needs: adminRead},
	{Name: InviteMember, Method: "POST", Pattern: "/v1/members/invitations", Needs: doing("manage the members of", wholeOrg(adminWrite))},
	{Name: RemoveMember, Method: "DELETE", Pattern: "/v1/members/{id}", Needs: doing("manage the members of", wholeOrg(adminWrite))},
	// The audit log: every key reads what its scope covers (the service
	// filters each entry), nothing of another project or the organization.
	{Name: ListAuditLog, Method: "GET", Pattern: "/v1/audit-log", Needs: doing("read the audit log of", adminRead)},
	// A project's webhooks, which receive its audit entries: only a key of
	// the whole project manages or reads them (a delivery shows any of the
	// project's environments).
	{Name: CreateWebhook, Method: "POST", Pattern: "/v1/projects/{project}/webhooks", Needs: doing("manage the webhooks of", onProject(adminWrite))},
	{Name: ListWebhooks, Method: "GET", Pattern: "/v1/projects/{project}/webhooks", Needs: doing("read the webhooks of", onProject(adminRead))},
	{Name: DeleteWebhook, Method: "DELETE", Pattern: "/v1/projects/{project}/webhooks/{webhook}", Needs: doing("manage the webhooks of", onProject(adminWrite))},
	{Name: ListDeliveries, Method: "GET", Pattern: "/v1/projects/{project}/webhooks/{webhook}/deliveries", Needs: doing("read the webhooks of", onProject(adminRead))},
	{Name: ReplayDelivery, Method: "POST", Pattern: "/v1/projects/{project}/webhooks/{webhook}/deliveries/{delivery}/replay", Needs: doing("manage the webhooks of", onProject(adminWrite))},
	{Name: Evaluate, Method: "POST", Pattern: "/v1/evaluate", Needs: evaluation, Timeout: SelfBounded},
	{Name: EvaluateBatch, Method: "POST", Pattern: "/v1/evaluate/batch", Needs: evaluation, Timeout: SelfBounded},
	{Name: CreateSession, Method: "POST", Pattern: "/v1/testing/sessions", Needs: sessions},
	{Name: SetOverrides, Method: "POST", Pattern: "/v1/testing/sessions/{id}/overrides", Needs: sessions},
	{Name: DeleteSession, Method: "DELETE", Pattern: "/v1/testing/sessions/{id}", Needs: sessions},

	// OpenFeature Remote Evaluation Protocol: evaluation, the only one
	// client keys may do, and from pages of the origins they allow.
	{Name: OFREPEvaluate, Method: "POST", Pattern: "/ofrep/v1/evaluate/flags/{key}", Needs: clientEvaluation, Style: apierror.OFREP, Timeout: SelfBounded, CORS: true},
	{Name: OFREPEvaluateAll, Method: "POST", Pattern: "/ofrep/v1/evaluate/flags", Needs: clientEvaluation, Style: apierror.OFREP, Timeout: SelfBounded, CORS: true},
	{Name: OFREPConfig, Method: "GET", Pattern: "/ofrep/v1/configuration", Needs: clientEvaluation, Style: apierror.OFREP, Timeout: SelfBounded, CORS: true},
	// The event stream a bulk evaluation names: open for as long as the
	// client keeps it (so under no request timeout), for the key its token
	// was minted for.
	{Name: OFREPEvents, Method: "GET", Pattern: "/ofrep/v1/events", Credential: StreamToken, Needs: clientEvaluation, Style: apierror.OFREP, Timeout: SelfBounded, CORS: true},

	// GraphQL: admin keys. Queries and mutations alike arrive as POST, so
	// the route asks for READ and the resolvers refuse mutations to
	// READ-only keys.
	{Name: GraphQLPost, Method: "POST", Pattern: "/graphql", Needs: adminRead, Style: apierror.GraphQL},
	{Name: GraphQLGet, Method: "GET", Pattern: "/graphql", Needs: adminRead, Style: apierror.GraphQL},

	// The dashboard: its page and assets, logging in and out, and
	// invitations (whose token travels in the body, never in the path).
	{Name: DashboardRoot, Method: "GET", Pattern: "/dashboard", Credential: Public, Needs: none, Style: apierror.Dashboard},
	{Name: DashboardPage, Method: "GET", Pattern: "/dashboard/", Credential: Public, Needs: none, Style: apierror.Dashboard},
	{Name: DashboardPage, Method: "HEAD", Pattern: "/dashboard/", Credential: Public, Needs: none, Style: apierror.Dashboard},
	{Name: DashboardIndex, Method: "GET", Pattern: "/dashboard/index.html", Credential: Public, Needs: none, Style: apierror.Dashboard},
	{Name: DashboardAsset, Method: "GET", Pattern: "/dashboard/assets/{path...}", Credential: Public, Needs: none, Style: apierror.Dashboard},
	{Name: DashboardAsset, Method: "HEAD", Pattern: "/dashboard/assets/{path...}", Credential: Public, Needs: none, Style: apierror.Dashboard},
	{Name: DashboardSession, Method: "GET", Pattern: "/dashboard/api/session", Credential: OptionalSession, Needs: adminRead, Style: apierror.Dashboard},
	{Name: DashboardLogin, Method: "POST", Pattern: "/dashboard/api/login", Credential: Public, Needs: none, Style: apierror.Dashboard},
	{Name: DashboardLogout, Method: "POST", Pattern: "/dashboard/api/logout", Credential: Session, Needs: adminRead, Style: apierror.Dashboard, Unmetered: true},
	{Name: InviteLookup, Method: "POST", Pattern: "/dashboard/api/invites/lookup", Credential: Public, Needs: none, Style: apierror.Dashboard},
	{Name: InviteAccept, Method: "POST", Pattern: "/dashboard/api/invites/accept", Credential: Public, Needs: none, Style: apierror.Dashboard},
}

// Families are the parts of the URL space, most specific first.
var Families = []Family{
	{Prefix: "/dashboard/api/v1/", Style: apierror.Dashboard, Credential: Session, Mount: "/dashboard/api"},
	{Prefix: "/dashboard/", Style: apierror.Dashboard, Credential: Public},
	{Prefix: "/graphql", Style: apierror.GraphQL, Credential: APIKey},
	{Prefix: "/ofrep/", Style: apierror.OFREP, Credential: APIKey},
	{Prefix: "/", Style: apierror.REST, Credential: APIKey},
}
