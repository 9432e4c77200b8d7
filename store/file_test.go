package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/flagbridge/flagbridge/store"
	"github.com/flagbridge/flagbridge/store/storetest"
)

func openFile(t *testing.T, dir string) *store.FileStore {
	t.Helper()
	s, err := store.OpenFile(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFileConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFile(t, t.TempDir()) })
}

func TestFileDurableAcrossReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := openFile(t, dir)
	err := s.Update(context.Background(), func(w store.Writer) error {
		return w.Put("flags", "a", []byte("kept"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "flagbridge.db"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	s = openFile(t, dir)
	err = s.View(context.Background(), func(r store.Reader) error {
		v, err := r.Get("flags", "a")
		if err == nil && string(v) != "kept" {
			err = fmt.Errorf("got %q", v)
		}
		return err
	})
	if err != nil {
		t.Fatalf("after reopening: %v", err)
	}
}

func TestFileLocked(t *testing.T) {
	dir := t.TempDir()
	first := openFile(t, dir)
	start := time.Now()
	second, err := store.OpenFile(dir, store.Options{})
	if err == nil {
		second.Close()
		t.Fatal("a second OpenFile of an open store succeeded")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second OpenFile: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("second OpenFile took %v to fail", d)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openFile(t, dir) // the lock is released by Close
}

// crashDirEnv makes the test binary act as the crashing child process of
// TestFileCrashSafety.
const crashDirEnv = "FLAGBRIDGE_STORE_CRASH_DIR"

// TestFileCrashSafety SIGKILLs a process in the middle of a stream of
// writes, then checks that every write it reported committed survived, that
// no transaction was applied halfway, and that the database is consistent.
func TestFileCrashSafety(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileCrashSafety$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it after it has reported some commits: what it reported is what
	// a client would have been told succeeded.
	committed := -1
	lines := bufio.NewScanner(out)
	for committed < 100 && lines.Scan() {
		if n, ok := strings.CutPrefix(lines.Text(), "committed "); ok {
			committed, _ = strconv.Atoi(n)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if committed < 100 {
		t.Fatalf("the child stopped after %d commits", committed)
	}

	path := filepath.Join(dir, "flagbridge.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("database check: %w", err)
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s := openFile(t, dir)
	err = s.View(context.Background(), func(r store.Reader) error {
		last, err := r.Get("meta", "last")
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(last))
		if err != nil {
			return err
		}
		if n < committed {
			return fmt.Errorf("last = %d, but %d was reported committed", n, committed)
		}
		// Every transaction wrote one document into each collection, and
		// only transactions up to last may show.
		for _, c := range []string{"a", "b"} {
			items, err := r.List(c)
			if err != nil {
				return err
			}
			if len(items) != n+1 {
				return fmt.Errorf("collection %s has %d documents, want %d", c, len(items), n+1)
			}
			for _, it := range items {
				if i, err := strconv.Atoi(it.ID); err != nil || i > n || string(it.Value) != c+it.ID {
					return fmt.Errorf("unexpected document %s/%s = %q", c, it.ID, it.Value)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// crashChild writes until it is killed, reporting each commit on stdout. It
// exits without closing the store if the parent never kills it.
func crashChild(dir string) {
	s, err := store.OpenFile(dir, store.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := range 100000 {
		err := s.Update(context.Background(), func(w store.Writer) error {
			id := fmt.Sprintf("%06d", i)
			if err := w.Put("a", id, []byte("a"+id)); err != nil {
				return err
			}
			if err := w.Put("b", id, []byte("b"+id)); err != nil {
				return err
			}
			return w.Put("meta", "last", []byte(strconv.Itoa(i)))
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("committed %d\n", i)
	}
	os.Exit(1)
}

func TestFileCloseStopsSubscribers(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan store.Event, 10)
	for range 3 {
		s.Subscribe(func(ev store.Event) { got <- ev })
	}
	err = s.Update(context.Background(), func(w store.Writer) error {
		w.Publish("t", nil)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		<-got
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Error("Ping after Close succeeded")
	}
	s.Subscribe(func(store.Event) { t.Error("subscriber of a closed store called") })
	waitGoroutines(t, before)
}

// waitGoroutines fails unless the goroutine count comes back to at most
// want: goroutines may take a moment to exit after Close returns.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines left, want at most %d:\n%s", runtime.NumGoroutine(), want, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
