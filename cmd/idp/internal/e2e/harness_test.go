// Package e2e drives headless Chromium through the development stack (the
// demo loan website, the IdP's hosted pages, the in-process mail sink) on
// SQLite and PostgreSQL. WebAuthn ceremonies run against Chromium's virtual
// authenticators through the DevTools protocol.
package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/cmd/idp/internal/devstack"
	"github.com/comstockloan/idp/login/passkey/passkeytest"
	"github.com/comstockloan/idp/storage/storagetest"
)

// browserAllocator starts one Chromium per test binary; each test gets its
// own browser context (separate cookies) from it.
var sharedBrowser struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedBrowser.cancel != nil {
		sharedBrowser.cancel()
	}
	os.Exit(code)
}

// browser is one isolated browser context (its own cookie jar) in a tab.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	if sharedBrowser.ctx == nil {
		opts := passkeytest.ChromiumOptions(passkeytest.ChromiumPath(t))
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		root, cancelRoot := chromedp.NewContext(allocCtx)
		if err := chromedp.Do(root); err != nil {
			cancelRoot()
			cancelAlloc()
			t.Fatalf("start Chromium: %v", err)
		}
		sharedBrowser.ctx = root
		sharedBrowser.cancel = func() { cancelRoot(); cancelAlloc() }
	}
	ctx, cancel := chromedp.NewContext(sharedBrowser.ctx, chromedp.WithNewBrowserContext())
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start browser: %v", err)
	}
	return &browser{t: t, ctx: ctx}
}

// do performs chromedp steps and fails the test with a page dump on error.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.fail(err)
	}
}

func (b *browser) fail(err error) {
	b.t.Helper()
	dumpCtx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(dumpCtx, chromedp.Evaluate[string]("location.href"))
	body, _ := chromedp.Run(dumpCtx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	b.t.Fatalf("browser: %v\nat %s\npage text:\n%s", err, loc, body)
}

// eval evaluates a JavaScript expression yielding a string.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.fail(err)
	}
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)))
	s, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		b.fail(err)
	}
	return strings.TrimSpace(s)
}

func (b *browser) navigate(url string) { b.t.Helper(); b.do(chromedp.Navigate(url)) }

func (b *browser) click(sel string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// fill sets an input's value (replacing what is there) without key events.
func (b *browser) fill(sel, value string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SetValue(chromedp.CSS(sel), value))
}

// submit clicks a button that submits a form and waits until the next page
// has loaded (a marker on the old document is gone).
func (b *browser) submit(sel string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(sel)))
	b.eval(`(window.__e2eOldPage = true, "")`)
	b.do(chromedp.Click(chromedp.CSS(sel)))
	b.waitFor(`!window.__e2eOldPage && document.readyState === "complete" ? "y" : ""`)
}

func (b *browser) path() string { b.t.Helper(); return b.eval("location.pathname") }

// waitFor polls a JavaScript expression until it yields a non-empty string;
// errors while the page navigates are retried until the deadline.
func (b *browser) waitFor(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	var lastErr error
	for {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err == nil && got != "" {
			return got
		}
		lastErr = err
		select {
		case <-ctx.Done():
			b.fail(fmt.Errorf("waiting for %s: last error %v", expr, lastErr))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitPath waits until the browser is on a page with this path.
func (b *browser) waitPath(path string) {
	b.t.Helper()
	b.waitFor(`location.pathname === ` + strconv.Quote(path) + ` && document.readyState === "complete" ? "y" : ""`)
}

// withoutConditionalUI makes every page of this browser report that passkey
// autofill is unavailable, as browsers without conditional mediation do, so
// a button ceremony is not raced by the autofill one.
func (b *browser) withoutConditionalUI() {
	b.t.Helper()
	_, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `if (window.PublicKeyCredential) { PublicKeyCredential.isConditionalMediationAvailable = async () => false; }`,
	})
	if err != nil {
		b.fail(err)
	}
}

// authenticator is a Chromium virtual authenticator.
type authenticator struct {
	id webauthn.AuthenticatorID
}

// addAuthenticator attaches a virtual passkey authenticator with user
// verification, as a phone or laptop with biometrics would be. transport
// "internal" plays this device, "hybrid" a phone reached by QR code.
func (b *browser) addAuthenticator(transport webauthn.AuthenticatorTransport, backupEligible bool) authenticator {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		b.fail(err)
	}
	res, err := chromedp.Call(b.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   transport,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
			DefaultBackupEligibility:    backupEligible,
			DefaultBackupState:          backupEligible,
			// cdproto always sends generateCmtgKeyOnNextOperation with
			// AddCredential, which Chromium refuses unless the authenticator
			// supports CMTG keys.
			HasCmtgKey: true,
		},
	})
	if err != nil {
		b.fail(err)
	}
	return authenticator{id: res.AuthenticatorID}
}

func (b *browser) removeAuthenticator(a authenticator) {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: a.id}); err != nil {
		b.fail(err)
	}
}

func (b *browser) credentials(a authenticator) []*webauthn.Credential {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: a.id})
	if err != nil {
		b.fail(err)
	}
	return res.Credentials
}

// addCredential copies a passkey (as read from another authenticator) into a.
func (b *browser) addCredential(a authenticator, c *webauthn.Credential) {
	b.t.Helper()
	cp := &webauthn.Credential{
		CredentialID: c.CredentialID, IsResidentCredential: c.IsResidentCredential, RpID: c.RpID,
		PrivateKey: c.PrivateKey, UserHandle: c.UserHandle, SignCount: c.SignCount,
		BackupEligibility: c.BackupEligibility, BackupState: c.BackupState,
		UserName: c.UserName, UserDisplayName: c.UserDisplayName,
	}
	if _, err := chromedp.Call(b.ctx, webauthn.AddCredential, webauthn.AddCredentialParams{AuthenticatorID: a.id, Credential: cp}); err != nil {
		b.fail(err)
	}
}

// stack is the dev stack under test, on one storage flavour.
func startStack(t *testing.T, flavor string, extraClients ...config.Client) *devstack.Stack {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	st, err := devstack.Start(context.Background(), devstack.Options{
		DataDir:      t.TempDir(),
		Database:     storagetest.DSN(t, flavor),
		IdPAddr:      "127.0.0.1:0",
		RPAddr:       "127.0.0.1:0",
		FastHashes:   true,
		ExtraClients: extraClients,
	}, logger)
	if err != nil {
		t.Fatalf("start dev stack: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

var otpPattern = regexp.MustCompile(`\b(\d{6})\b`)

// latestOTP waits for the n-th (1-based) mail to addr and returns its code.
func latestOTP(t *testing.T, st *devstack.Stack, addr string, seen int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := st.Sink.WaitForNew(ctx, addr, seen)
	if err != nil {
		t.Fatalf("no OTP mail to %s: %v", addr, err)
	}
	code := otpPattern.FindStringSubmatch(m.Body)
	if code == nil {
		t.Fatalf("no 6-digit code in mail body:\n%s", m.Body)
	}
	return code[1]
}

func mailsTo(st *devstack.Stack, addr string) int {
	n := 0
	for _, m := range st.Sink.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) {
				n++
			}
		}
	}
	return n
}
