package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server started for one test.
type Redis struct {
	t    testing.TB
	Port int
	Dir  string
	args []string
	cmd  *exec.Cmd
	log  *syncBuffer
}

// RedisURL returns a Redis URL for a test: REDIS_URL when it is set (the
// caller must then isolate its keys, see [UniquePrefix]), otherwise the URL
// of a fresh redis-server started for this test.
func RedisURL(t testing.TB) string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return StartRedis(t).URL()
}

// StartRedis starts a private redis-server on a free loopback port with
// persistence off; it is stopped when the test ends. extraArgs are passed to
// redis-server as "--name value" pairs. Without redis-server installed the
// test fails, saying how to install it: these tests never fall back to a fake.
func StartRedis(t testing.TB, extraArgs ...string) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (apt-get install -y redis-server), and these tests need a real Redis")
	}
	r := &Redis{t: t, Dir: t.TempDir(), Port: FreePort(t)}
	r.args = append([]string{
		"--port", strconv.Itoa(r.Port),
		"--bind", "127.0.0.1",
		"--dir", r.Dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--protected-mode", "no",
	}, extraArgs...)
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is the redis:// URL of this server.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d", r.Port) }

// Addr is host:port of this server.
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// Start starts (or restarts) the server on its port and waits until it
// answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	if r.cmd != nil {
		return
	}
	r.log = &syncBuffer{}
	cmd := exec.Command("redis-server", r.args...)
	cmd.Stdout = r.log
	cmd.Stderr = r.log
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("starting redis-server: %v", err)
	}
	r.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on port %d did not answer: %v\n%s", r.Port, err, r.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (as a crash would) and waits for it to exit.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Client returns a go-redis client for this server, closed when the test
// ends.
func (r *Redis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// FreePort returns a TCP port that was free on every interface a moment
// ago, for a test server to listen on.
func FreePort(t testing.TB) int {
	t.Helper()
	// Below the kernel's ephemeral range: a port handed out there may be
	// taken again at any moment by a listener on port 0 (an httptest
	// server of another test) or by an outgoing connection, before the
	// server this port is for binds it. Here only other FreePort callers
	// compete, at random among thousands, and each checks by binding.
	low, high := 20000, ephemeralLow()
	for range 100 {
		if high-low < 1000 {
			break
		}
		port := low + mathrand.IntN(high-low)
		if l, err := net.Listen("tcp", ":"+strconv.Itoa(port)); err == nil {
			l.Close()
			return port
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ephemeralLow is the lowest port of the kernel's ephemeral range
// (32768 where it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

// UniquePrefix returns a random name for isolating one test's keys in a
// shared Redis.
func UniquePrefix(t testing.TB) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "t" + hex.EncodeToString(b[:])
}

// ProjectRoot returns the repository root (the folder holding go.mod).
func ProjectRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}
