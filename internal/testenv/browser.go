package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/inspector"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Browser is a headless Chromium for one test, driven with chromedp. It has
// its own profile and its own HOME, whose NSS database trusts the test
// server's CA as a real trust anchor (no certificate error is ignored). It
// records what the pages write to the console: an error, an uncaught
// exception or a Content-Security-Policy violation fails the test.
type Browser struct {
	t        testing.TB
	tab      context.Context // the first tab; it owns the browser process
	shotsDir string
	keepDir  bool

	mu       sync.Mutex
	problems []string // console errors: they fail the test
	notes    []string // console warnings: logged
	shots    int
	tabs     []context.Context

	expectHTTPErrorsUnder string
}

// BrowserOptions shape a test browser.
type BrowserOptions struct {
	// TrustCA is the PEM file of a CA certificate the browser trusts for
	// HTTPS: Caddy.RootCA() of the server under test.
	TrustCA string
	// ExpectHTTPErrorsUnder is a URL path prefix (such as "/dashboard/api/")
	// whose 4xx answers the page handles and shows itself: Chromium logs
	// each as "Failed to load resource", which is then not a console error.
	// A 4xx anywhere else (a missing script or image) and every 5xx still is.
	ExpectHTTPErrorsUnder string
}

// BrowserPath finds Chromium: Debian's /usr/bin/chromium, or
// $CHROMIUM_PATH.
func BrowserPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("Chromium is not installed (apt-get install -y chromium), and the dashboard tests need a real browser")
	return ""
}

// StartBrowser starts a headless Chromium for this test; it is closed when
// the test ends, after the console has been checked.
func StartBrowser(t testing.TB, opts BrowserOptions) *Browser {
	t.Helper()
	exe := BrowserPath(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if opts.TrustCA != "" {
		trustInNSS(t, filepath.Join(home, ".pki", "nssdb"), opts.TrustCA)
	} else if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}

	b := &Browser{t: t, expectHTTPErrorsUnder: opts.ExpectHTTPErrorsUnder}
	b.shotsDir, b.keepDir = screenshotDir(t)
	if b.keepDir {
		t.Logf("screenshots: %s", b.shotsDir)
	} else {
		t.Logf("screenshots: %s (removed if the test passes; set FLAGBRIDGE_SCREENSHOTS=<folder> to keep them)", b.shotsDir)
	}

	var output syncBuffer
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), // Caddy advertises HTTP/3; keep to one, TCP, transport
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.WindowSize(1440, 900),
		chromedp.Env("HOME="+home),
		chromedp.CombinedOutput(&output),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	tab, cancelTab := chromedp.NewContext(alloc, chromedp.WithListener(b.listen))
	b.tab = tab
	b.tabs = append(b.tabs, tab)
	start := time.Now()
	if err := chromedp.Do(tab); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("starting %s: %v\n%s", exe, err, output.String())
	}
	t.Logf("Chromium started in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		b.checkConsole()
		_ = chromedp.Cancel(tab)
		cancelTab()
		cancelAlloc()
		if !b.keepDir {
			if t.Failed() {
				t.Logf("screenshots kept in %s", b.shotsDir)
			} else {
				_ = os.RemoveAll(b.shotsDir)
			}
		}
	})
	return b
}

// Tab is the browser's first tab.
func (b *Browser) Tab() context.Context { return b.tab }

// NewPrivateTab opens a tab in a new browser context: its own cookies and
// storage, as another person's browser would have. It closes with the test.
func (b *Browser) NewPrivateTab() context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.tab, chromedp.WithNewBrowserContext(), chromedp.WithListener(b.listen))
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		b.t.Fatalf("opening a private tab: %v", err)
	}
	b.mu.Lock()
	b.tabs = append(b.tabs, ctx)
	b.mu.Unlock()
	b.t.Cleanup(func() {
		syncTab(ctx) // see its last events before it closes
		cancel()
	})
	return ctx
}

// listen runs in a tab's event loop for every event, in order.
func (b *Browser) listen(ev any) {
	var problem, note string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		text := consoleArgs(ev.Args)
		switch ev.Type {
		case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeAssert:
			problem = fmt.Sprintf("console.%s: %s%s", ev.Type, text, stackPlace(ev.StackTrace))
		case runtime.ConsoleAPICalledTypeWarning:
			note = "console.warn: " + text
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		problem = fmt.Sprintf("uncaught exception: %s (%s:%d:%d)", text, d.URL, d.LineNumber+1, d.ColumnNumber+1)
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		switch {
		case e.Level == cdplog.EntryLevelError && b.expectedHTTPError(e):
			note = fmt.Sprintf("expected HTTP error: %s %s", e.Text, e.URL)
		case e.Level == cdplog.EntryLevelError:
			// CSP violations arrive here too (source "security").
			problem = fmt.Sprintf("%s error: %s %s", e.Source, e.Text, e.URL)
		case e.Level == cdplog.EntryLevelWarning:
			note = fmt.Sprintf("%s warning: %s %s", e.Source, e.Text, e.URL)
		}
	case *inspector.EventTargetCrashed:
		problem = "the page crashed"
	}
	if problem == "" && note == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if problem != "" {
		b.problems = append(b.problems, problem)
	}
	if note != "" {
		b.notes = append(b.notes, note)
	}
}

var failedLoad = regexp.MustCompile(`the server responded with a status of 4\d\d\b`)

func (b *Browser) expectedHTTPError(e *cdplog.Entry) bool {
	if b.expectHTTPErrorsUnder == "" || e.Source != cdplog.EntrySourceNetwork || !failedLoad.MatchString(e.Text) {
		return false
	}
	u, err := url.Parse(e.URL)
	return err == nil && strings.HasPrefix(u.Path, b.expectHTTPErrorsUnder)
}

func consoleArgs(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a.Type == runtime.RemoteObjectTypeString:
			parts = append(parts, strings.Trim(string(a.Value), `"`))
		case a.Description != "":
			parts = append(parts, a.Description)
		default:
			parts = append(parts, string(a.Value))
		}
	}
	return strings.Join(parts, " ")
}

func stackPlace(st *runtime.StackTrace) string {
	if st == nil || len(st.CallFrames) == 0 {
		return ""
	}
	f := st.CallFrames[0]
	return fmt.Sprintf(" (%s:%d)", f.URL, f.LineNumber+1)
}

// TakeProblems returns the console errors recorded so far and forgets them
// (for a test that provokes one on purpose).
func (b *Browser) TakeProblems() []string {
	b.sync()
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// TakeNotes returns the expected HTTP errors the console logged so far
// (see BrowserOptions.ExpectHTTPErrorsUnder) and forgets them, for a test
// that wants none at all on some page.
func (b *Browser) TakeNotes() []string {
	b.sync()
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.notes
	b.notes = nil
	return n
}

// sync makes every tab answer one command: the events that came before its
// answer have then been seen.
func (b *Browser) sync() {
	b.mu.Lock()
	tabs := append([]context.Context(nil), b.tabs...)
	b.mu.Unlock()
	for _, tab := range tabs {
		syncTab(tab)
	}
}

func syncTab(tab context.Context) {
	if tab.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[int](`1`))
}

func (b *Browser) checkConsole() {
	b.sync()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.notes {
		b.t.Logf("browser console: %s", n)
	}
	for _, p := range b.problems {
		b.t.Errorf("browser console: %s", p)
	}
}

// CheckConsole fails the test now if a page has logged an error so far.
func (b *Browser) CheckConsole() {
	b.t.Helper()
	for _, p := range b.TakeProblems() {
		b.t.Errorf("browser console: %s", p)
	}
}

// Screenshot saves a PNG of the whole page of tab ctx as NN-name.png in the
// test's screenshot folder.
func (b *Browser) Screenshot(ctx context.Context, name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, wholePage)
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.mu.Lock()
	b.shots++
	n := b.shots
	b.mu.Unlock()
	path := filepath.Join(b.shotsDir, fmt.Sprintf("%02d-%s.png", n, name))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
	}
}

// screenshotDir is $FLAGBRIDGE_SCREENSHOTS/<test> (kept), or a temporary
// folder that is removed when the test passes.
func screenshotDir(t testing.TB) (dir string, keep bool) {
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	if base := os.Getenv("FLAGBRIDGE_SCREENSHOTS"); base != "" {
		dir = filepath.Join(base, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir, true
	}
	dir, err := os.MkdirTemp("", "flagbridge-screenshots-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	return dir, false
}

// trustInNSS makes dbDir an NSS database (Chromium's $HOME/.pki/nssdb on
// Linux) in which the CA of caFile is a trust anchor for TLS servers: what
// "certutil -A -t C,," does. certutil (libnss3-tools) is rarely installed,
// so this calls libnss3, which Chromium itself depends on, from Python's
// ctypes.
func trustInNSS(t testing.TB, dbDir, caFile string) {
	t.Helper()
	if err := os.MkdirAll(dbDir, 0o700); err != nil {
		t.Fatal(err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed to add the test CA to Chromium's NSS database: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", nssTrustScript, dbDir, caFile).CombinedOutput()
	if err != nil {
		t.Fatalf("adding the test CA to the NSS database %s: %v\n%s", dbDir, err, out)
	}
}

// nssTrustScript: argv[1] is the database folder, argv[2] the PEM file.
const nssTrustScript = `
import base64, ctypes, sys

db_dir, pem_file = sys.argv[1], sys.argv[2]
nss = ctypes.CDLL("libnss3.so")

class SECItem(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("data", ctypes.c_void_p), ("len", ctypes.c_uint)]

class CERTCertTrust(ctypes.Structure):
    _fields_ = [("ssl", ctypes.c_uint), ("email", ctypes.c_uint), ("objsign", ctypes.c_uint)]

def check(ok, what):
    if not ok:
        sys.exit("NSS: %s failed (error %d)" % (what, nss.PORT_GetError()))

vp = ctypes.c_void_p
nss.NSS_InitReadWrite.argtypes = [ctypes.c_char_p]
nss.CERT_GetDefaultCertDB.restype = vp
nss.CERT_NewTempCertificate.restype = vp
nss.CERT_NewTempCertificate.argtypes = [vp, ctypes.POINTER(SECItem), ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
nss.PK11_GetInternalKeySlot.restype = vp
nss.PK11_NeedUserInit.argtypes = [vp]
nss.PK11_InitPin.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p]
nss.PK11_ImportCert.argtypes = [vp, vp, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
nss.CERT_DecodeTrustString.argtypes = [ctypes.POINTER(CERTCertTrust), ctypes.c_char_p]
nss.CERT_ChangeCertTrust.argtypes = [vp, vp, ctypes.POINTER(CERTCertTrust)]
nss.CERT_DestroyCertificate.argtypes = [vp]
nss.PK11_FreeSlot.argtypes = [vp]

check(nss.NSS_InitReadWrite(("sql:" + db_dir).encode()) == 0, "opening the database")
pem = open(pem_file).read()
der = base64.b64decode("".join(l for l in pem.splitlines() if l and not l.startswith("-----")))
buf = ctypes.create_string_buffer(der, len(der))
item = SECItem(0, ctypes.cast(buf, vp), len(der))
cert = nss.CERT_NewTempCertificate(nss.CERT_GetDefaultCertDB(), ctypes.byref(item), None, 0, 1)
check(cert, "decoding the certificate")
slot = nss.PK11_GetInternalKeySlot()
if nss.PK11_NeedUserInit(slot):
    check(nss.PK11_InitPin(slot, None, b"") == 0, "initializing the database (empty password)")
check(nss.PK11_ImportCert(slot, cert, 0, b"FlagBridge test CA", 0) == 0, "importing the certificate")
trust = CERTCertTrust()
check(nss.CERT_DecodeTrustString(ctypes.byref(trust), b"C,,") == 0, "decoding the trust flags")
check(nss.CERT_ChangeCertTrust(nss.CERT_GetDefaultCertDB(), cert, ctypes.byref(trust)) == 0, "trusting the certificate")
nss.CERT_DestroyCertificate(cert)
nss.PK11_FreeSlot(slot)
check(nss.NSS_Shutdown() == 0, "closing the database")
`

// wholePage captures the page at its full height. It makes the viewport as
// tall as the document for the capture, rather than capturing beyond the
// viewport, which would draw sticky headers in the middle of the page.
func wholePage(ctx context.Context, t *chromedp.Target) ([]byte, error) {
	size, err := chromedp.Evaluate[[2]int64](`[window.innerWidth,
		Math.max(window.innerHeight, document.documentElement.scrollHeight)]`)(ctx, t)
	if err != nil {
		return nil, err
	}
	if _, err := chromedp.EmulateViewport(size[0], min(size[1], 8000))(ctx, t); err != nil {
		return nil, err
	}
	defer func() { _, _ = chromedp.ResetViewport()(ctx, t) }()
	return chromedp.CaptureScreenshot()(ctx, t)
}
