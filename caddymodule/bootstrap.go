package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/store"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "flagbridge",
		Usage: "bootstrap --email <address> --name <name> [--config <path>] [--adapter <name>] [--org-name <name>] [--key-name <name>] [--new-key [--org <id>]] [--new-org] [--quiet]",
		Short: "Administers FlagBridge: bootstrap prints a first organization-wide admin key",
		Long: `
"caddy flagbridge bootstrap" creates the first organization of a FlagBridge
deployment with its first owner (--email, --name) and prints an
organization-wide admin key that owner holds, once. It reads the
storage setting from the config (the same --config as "caddy run"), so it
works on the embedded store and on Redis, whether or not the server is
running: when the server holds the embedded store, the request goes through
Caddy's local admin endpoint instead.

Once an organization exists it refuses, unless --new-key asks for another
organization-wide key (for the only organization, or the one --org names)
or --new-org for another organization. With --new-key, --email picks the
member who owns the new key (default: the organization's first owner).
--password-stdin reads that member's dashboard password from standard input
(echo "$PASSWORD" | caddy flagbridge bootstrap ... --password-stdin).`,
		CobraFunc: func(cmd *cobra.Command) {
			bootstrap := &cobra.Command{
				Use:   "bootstrap",
				Short: "Creates the first organization and prints an organization-wide admin key",
				RunE:  caddycmd.WrapCommandFuncForCobra(cmdBootstrap),
			}
			f := bootstrap.Flags()
			f.String("email", "", "E-mail address of the organization's first owner (required to create one)")
			f.String("name", "", "Name of the organization's first owner (required to create one)")
			f.StringP("config", "c", "", "Configuration file (default: ./Caddyfile)")
			f.StringP("adapter", "a", "", "Name of config adapter to apply")
			f.String("org-name", "", "Name of the organization to create (default \"Default\")")
			f.String("key-name", "", "Name of the key (default \"bootstrap\")")
			f.Bool("new-key", false, "Mint another organization-wide admin key for an existing organization")
			f.String("org", "", "With --new-key: the organization id, when there are several")
			f.Bool("new-org", false, "Create another organization even if one exists")
			f.BoolP("quiet", "q", false, "Print only the key")
			f.Bool("password-stdin", false, "Read the owner's dashboard password from standard input")
			cmd.AddCommand(bootstrap)
		},
	})
}

func cmdBootstrap(fl caddycmd.Flags) (int, error) {
	configFile, adapter := fl.String("config"), fl.String("adapter")
	in := admin.BootstrapInput{
		OrgName:    fl.String("org-name"),
		KeyName:    fl.String("key-name"),
		NewKey:     fl.Bool("new-key"),
		OrgID:      fl.String("org"),
		NewOrg:     fl.Bool("new-org"),
		OwnerEmail: fl.String("email"),
		OwnerName:  fl.String("name"),
	}
	if fl.Bool("password-stdin") {
		pw, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
		if err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("reading the password: %v", err)
		}
		in.OwnerPassword = strings.TrimRight(string(pw), "\r\n")
	}
	cfg, _, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	app, err := appFromConfig(cfg)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}

	res, err := bootstrapDirect(app, in)
	if errors.Is(err, store.ErrLocked) {
		// A running server holds the embedded store: ask it.
		addr, aerr := caddycmd.DetermineAdminAPIAddress("", cfg, configFile, adapter)
		if aerr != nil {
			return caddy.ExitCodeFailedStartup, aerr
		}
		res, err = bootstrapViaAdminAPI(addr, in)
	}
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	printBootstrap(os.Stdout, res, fl.Bool("quiet"))
	return caddy.ExitCodeSuccess, nil
}

// appFromConfig reads the flagbridge app's settings out of a JSON config,
// with the same defaults the running app applies.
func appFromConfig(cfg []byte) (*App, error) {
	var whole struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	app := new(App)
	if len(cfg) > 0 {
		if err := json.Unmarshal(cfg, &whole); err != nil {
			return nil, fmt.Errorf("reading config: %v", err)
		}
		if raw, ok := whole.Apps["flagbridge"]; ok {
			if err := json.Unmarshal(raw, app); err != nil {
				return nil, fmt.Errorf("reading the flagbridge app config: %v", err)
			}
		}
	}
	if app.Storage == "" {
		app.Storage = "file://" + filepath.Join(caddy.AppDataDir(), "flagbridge")
	}
	return app, nil
}

func bootstrapDirect(app *App, in admin.BootstrapInput) (*admin.BootstrapResult, error) {
	st, err := store.Open(app.Storage, store.Options{
		Timeout:   max(time.Duration(app.StorageTimeout), 2*time.Second),
		KeyPrefix: app.KeyPrefix,
	})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := admin.New(st).Bootstrap(ctx, in)
	var ae *apierror.Error
	if errors.As(err, &ae) {
		return nil, errors.New(ae.Message)
	}
	return res, err
}

func bootstrapViaAdminAPI(addr string, in admin.BootstrapInput) (*admin.BootstrapResult, error) {
	body, _ := json.Marshal(in)
	hdr := http.Header{"Content-Type": {"application/json"}}
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, "/flagbridge/bootstrap", hdr, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("the embedded store is in use by a running server, and its admin endpoint (%s) did not bootstrap: %w", addr, err)
	}
	defer resp.Body.Close()
	var res admin.BootstrapResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&res); err != nil {
		return nil, fmt.Errorf("reading the admin endpoint's answer: %v", err)
	}
	return &res, nil
}

func printBootstrap(w io.Writer, res *admin.BootstrapResult, quiet bool) {
	if quiet {
		fmt.Fprintln(w, res.Key)
		return
	}
	verb := "existing"
	if res.Created {
		verb = "created"
	}
	fmt.Fprintf(w, "Organization %q (%s), %s.\n", res.Organization.Name, res.Organization.ID, verb)
	fmt.Fprintf(w, "Key owner: %s <%s>, %s.\n", res.Owner.Name, res.Owner.Email, res.Owner.Role)
	fmt.Fprintf(w, "Organization-wide admin key (READ, WRITE; no expiry):\n\n    %s\n\n", res.Key)
	fmt.Fprintln(w, "Store it now: it is shown only this once and cannot be recovered.")
}

// AdminAPI is the admin.api.flagbridge module: it adds POST
// /flagbridge/bootstrap to Caddy's local admin endpoint, which "caddy
// flagbridge bootstrap" uses when a running server holds the embedded
// store. The admin endpoint is local and already fully privileged (it can
// replace the whole config), so this grants nothing new.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.flagbridge",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: "/flagbridge/bootstrap",
		Handler: caddy.AdminHandlerFunc(handleBootstrap),
	}}
}

func handleBootstrap(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("use POST")}
	}
	app := currentApp()
	if app == nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("the flagbridge app is not running")}
	}
	c, err := app.ready()
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	var in admin.BootstrapInput
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("decoding request: %v", err)}
	}
	res, err := c.Admin.Bootstrap(r.Context(), in)
	if err != nil {
		var ae *apierror.Error
		if errors.As(err, &ae) {
			return caddy.APIError{HTTPStatus: ae.Status, Err: errors.New(ae.Message)}
		}
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(res)
}

// Interface guard.
var _ caddy.AdminRouter = AdminAPI{}
