package testenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// CaddyBinary builds this repository's Caddy (go build ./cmd/caddy) once
// per test binary and returns its path. The build is not instrumented with
// -race: it is the product as users build it.
func CaddyBinary(t testing.TB) string {
	t.Helper()
	root := ProjectRoot(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flagbridge-caddy-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "caddy")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/caddy")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Caddy is one running instance of the built binary.
type Caddy struct {
	t         testing.TB
	Bin       string
	Dir       string // holds the config, logs and the XDG data/config homes
	HTTPSPort int
	HTTPPort  int
	AdminPort int
	Config    string // path of the config file
	Adapter   string // its adapter: "caddyfile", or "" for JSON
	LogPath   string // Caddy's own log
	AccessLog string // the HTTPS site's access log

	cmd    *exec.Cmd
	output *syncBuffer
	client *http.Client
}

// CaddyOptions shape a test instance.
type CaddyOptions struct {
	// Global is inserted into the global options block (e.g. the flagbridge
	// option).
	Global string
	// Site replaces the HTTPS site's body (default: flagbridge_auth and
	// flagbridge_api).
	Site string
	// Extra is appended after the sites.
	Extra string
	// Dir reuses a folder (and so the data directory) of an earlier
	// instance, for restart tests; empty means a fresh one.
	Dir string
	// File, if set, is a Caddyfile to run as it is, on the ports it names
	// (HTTPSPort, HTTPPort and AdminPort must then say which they are).
	File                           string
	HTTPSPort, HTTPPort, AdminPort int
}

// NewCaddy writes a Caddyfile for a fresh instance on free ports:
// https://localhost:<https> with Caddy's internal CA, http://:<http>
// guarded by flagbridge_auth, and the admin endpoint on localhost:<admin>.
// It does not start it.
func NewCaddy(t testing.TB, opts CaddyOptions) *Caddy {
	t.Helper()
	c := &Caddy{t: t, Bin: CaddyBinary(t), Dir: opts.Dir}
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	c.HTTPSPort, c.HTTPPort, c.AdminPort = FreePort(t), FreePort(t), FreePort(t)
	c.Config = filepath.Join(c.Dir, "Caddyfile")
	c.Adapter = "caddyfile"
	c.LogPath = filepath.Join(c.Dir, "caddy.log")
	c.AccessLog = filepath.Join(c.Dir, "access.log")
	if opts.File != "" {
		b, err := os.ReadFile(opts.File)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.Config, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c.HTTPSPort, c.HTTPPort, c.AdminPort = opts.HTTPSPort, opts.HTTPPort, opts.AdminPort
		return c
	}
	site := opts.Site
	if site == "" {
		site = "flagbridge_auth\n\tflagbridge_api"
	}
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	auto_https disable_redirects
	skip_install_trust
	default_bind 127.0.0.1
	log {
		output file %s
		format json
		level DEBUG
	}
%s
}

https://localhost:%d {
	tls internal
	log {
		output file %s
		format json
	}
	%s
}

http://:%d {
	flagbridge_auth
}
%s
`, c.AdminPort, c.HTTPPort, c.HTTPSPort, c.LogPath, opts.Global, c.HTTPSPort, c.AccessLog, site, c.HTTPPort, opts.Extra)
	if err := os.WriteFile(c.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// Env is the environment the instance's commands run with: its own XDG
// homes, so instances never share Caddy's data directory by accident.
func (c *Caddy) Env() []string {
	return append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(c.Dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(c.Dir, "config"),
		"HOME="+c.Dir,
	)
}

// Start runs the instance and waits until it answers over HTTPS.
func (c *Caddy) Start() *Caddy {
	c.t.Helper()
	c.output = &syncBuffer{}
	args := []string{"run", "--config", c.Config}
	if c.Adapter != "" {
		args = append(args, "--adapter", c.Adapter)
	}
	cmd := exec.Command(c.Bin, args...)
	cmd.Env = c.Env()
	cmd.Stdout, cmd.Stderr = c.output, c.output
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting caddy: %v", err)
	}
	c.cmd = cmd
	c.t.Cleanup(c.Stop)
	// Ready means a full TLS handshake with the certificate Caddy's
	// internal CA issues, which happens shortly after the port opens.
	c.client = nil
	deadline := time.Now().Add(30 * time.Second)
	for {
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.HTTPSPort), 100*time.Millisecond); err == nil {
			conn.Close()
			if _, err := os.Stat(c.rootCA()); err == nil {
				// A handshake, not a request: a request without a key
				// would spend from the client IP's unauthenticated bucket.
				cfg := c.Client().Transport.(*http.Transport).TLSClientConfig
				addr := fmt.Sprintf("localhost:%d", c.HTTPSPort)
				if conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, cfg); err == nil {
					conn.Close()
					break
				}
				c.client = nil
			}
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) {
			c.t.Fatalf("caddy did not come up:\n%s\n%s", c.output.String(), c.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

// CPUTime returns the CPU time (user and system) the running instance has
// used so far, from /proc: what a load benchmark charges a scenario's
// requests with. It is zero where /proc is not (or the instance is not
// running).
func (c *Caddy) CPUTime() time.Duration {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return ProcessCPU(c.cmd.Process.Pid)
}

// ProcessCPU returns the CPU time (user and system) process pid has used
// so far, from /proc; zero where /proc is not, or the process is gone.
func ProcessCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: the fields that
	// count come after its closing parenthesis (utime and stime are the
	// 14th and 15th fields of the line).
	rest := string(b)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	// Linux reports in clock ticks of 1/100 s (USER_HZ) on every
	// architecture it runs these tests on.
	return time.Duration(ticks) * 10 * time.Millisecond
}

// Stop ends the instance gracefully (SIGTERM) and waits for it.
func (c *Caddy) Stop() { c.signal(syscall.SIGTERM) }

// Kill ends the instance as a crash would (SIGKILL).
func (c *Caddy) Kill() { c.signal(syscall.SIGKILL) }

func (c *Caddy) signal(sig syscall.Signal) {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	c.cmd = nil
}

// Output is what the process wrote to stdout and stderr.
func (c *Caddy) Output() string {
	if c.output == nil {
		return ""
	}
	return c.output.String()
}

// Logs returns Caddy's own log.
func (c *Caddy) Logs() string {
	b, _ := os.ReadFile(c.LogPath)
	return string(b)
}

// RootCA is the path of the instance's local CA certificate, which clients
// must trust.
func (c *Caddy) RootCA() string { return c.rootCA() }

func (c *Caddy) rootCA() string {
	return filepath.Join(c.Dir, "data", "caddy", "pki", "authorities", "local", "root.crt")
}

// Client returns an HTTPS client that trusts this instance's internal CA,
// and nothing else.
func (c *Caddy) Client() *http.Client {
	c.t.Helper()
	if c.client != nil {
		return c.client
	}
	pem, err := os.ReadFile(c.rootCA())
	if err != nil {
		c.t.Fatalf("reading Caddy's root CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		c.t.Fatal("bad root CA")
	}
	c.client = &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "localhost"},
			MaxIdleConnsPerHost: 64,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c.client
}

// URL is the HTTPS URL of path on this instance.
func (c *Caddy) URL(path string) string {
	return fmt.Sprintf("https://localhost:%d%s", c.HTTPSPort, path)
}

// PlainURL is the plain-HTTP URL of path on this instance.
func (c *Caddy) PlainURL(path string) string {
	return fmt.Sprintf("http://localhost:%d%s", c.HTTPPort, path)
}

// Run runs the built binary with args (e.g. "flagbridge", "bootstrap") in
// this instance's environment and returns stdout; it fails the test if the
// command fails.
func (c *Caddy) Run(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.TryRun(args...)
	if err != nil {
		c.t.Fatalf("caddy %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// TryRun is Run that returns the error instead of failing.
func (c *Caddy) TryRun(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Env = c.Env()
	cmd.Dir = c.Dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}
