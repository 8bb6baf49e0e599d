package passkey_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// fixturePage marks its elements the way the hosted pages do, with texts of
// its own on the error element so the test can tell which mapping ran.
const fixturePage = `<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>fixture</title>
<script src="/static/passkey.js" defer></script></head><body>
<input id="loginID" name="loginID" autocomplete="username webauthn">
<button id="login" type="button" data-passkey-login>パスキー認証</button>
<button id="register" type="button" data-passkey-register>パスキーを作成</button>
<p id="err" data-passkey-error role="alert" hidden
   data-msg-cancelled="MSG-CANCELLED" data-msg-already="MSG-ALREADY"
   data-msg-unsupported="MSG-UNSUPPORTED" data-msg-failed="MSG-FAILED"></p>
</body></html>`

// pageServer plays the login pages' handlers around a Service: the flow is a
// cookie, ceremony state lives only in the store.
type pageServer struct {
	svc    *passkey.Service
	store  storage.Store
	user   *storage.User
	logger *slog.Logger
}

func (p *pageServer) routes(script []byte) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		if _, err := r.Cookie("flow"); err != nil {
			http.SetCookie(w, &http.Cookie{Name: "flow", Value: rand.Text(), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		w.Header().Set("Content-Security-Policy", "script-src 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page := fixturePage
		if r.URL.Query().Get("autofill") == "off" {
			page = strings.Replace(page, `autocomplete="username webauthn"`, `autocomplete="username"`, 1)
		}
		io.WriteString(w, page)
	})
	mux.HandleFunc("GET /static/passkey.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(script)
	})
	mux.HandleFunc("GET /done/{what}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!doctype html><title>done</title>"+r.PathValue("what"))
	})
	mux.HandleFunc("POST /login/passkey/register/options", p.ceremony(func(ctx context.Context, flow string, _ *http.Request) (any, error) {
		return p.svc.BeginRegistration(ctx, p.user, flow)
	}))
	mux.HandleFunc("POST /login/passkey/register/finish", p.ceremony(func(ctx context.Context, flow string, r *http.Request) (any, error) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			return nil, err
		}
		if _, err := p.svc.FinishRegistration(ctx, p.user, flow, body, false); err != nil {
			return nil, err
		}
		return map[string]string{"redirect": "/done/registered"}, nil
	}))
	mux.HandleFunc("POST /login/passkey/login/options", p.ceremony(func(ctx context.Context, flow string, r *http.Request) (any, error) {
		return p.svc.BeginLogin(ctx, flow, r.URL.Query().Get("mediation") == "conditional")
	}))
	mux.HandleFunc("POST /login/passkey/login/finish", p.ceremony(func(ctx context.Context, flow string, r *http.Request) (any, error) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			return nil, err
		}
		res, err := p.svc.FinishLogin(ctx, flow, body)
		if err != nil {
			return nil, err
		}
		return map[string]string{"redirect": "/done/welcome-" + res.User.ID}, nil
	}))
	return mux
}

func (p *pageServer) ceremony(fn func(ctx context.Context, flow string, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		flow, err := r.Cookie("flow")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(passkey.ErrorBody{Error: "no flow", Code: passkey.CodeWrongFlow})
			return
		}
		out, err := fn(r.Context(), flow.Value, r)
		if err != nil {
			p.logger.Info("ceremony failed", "path", r.URL.Path, "err", err)
			status, body := passkey.ErrorResponse(err, "ja")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(body)
			return
		}
		json.NewEncoder(w).Encode(out)
	}
}

// TestPageScriptInBrowser drives templates/static/passkey.js in headless
// Chromium with a CDP virtual authenticator against a real Service.
func TestPageScriptInBrowser(t *testing.T) {
	script, err := os.ReadFile("../../templates/static/passkey.js")
	if err != nil {
		t.Fatalf("read page script: %v", err)
	}
	store := storagetest.New(t, "sqlite")
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	ctx := t.Context()
	now := time.Now().UTC()
	user := &storage.User{ID: "u-browser", LoginID: "loan0100", Email: "a@example.jp", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}
	if err := store.CreateUser(ctx, user); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	origin := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	svc, err := passkey.New(passkey.Config{RPID: "localhost", RPDisplayName: "コムストックローン", Origins: []string{origin}}, store, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	pages := &pageServer{svc: svc, store: store, user: user, logger: logger}
	srv := httptest.NewUnstartedServer(pages.routes(script))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("/usr/bin/chromium"), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser, chromedp.Navigate(origin+"/page")); err != nil {
		t.Fatalf("start browser: %v", err)
	}
	if _, err := chromedp.Call(browser, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	added, err := chromedp.Call(browser, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
			Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		t.Fatalf("add virtual authenticator: %v", err)
	}

	// step opens page, runs setup JS, clicks button (if any) and waits for
	// a redirect to wantPath or for wantError in the error element. The
	// virtual authenticator answers at once, so on a page with a
	// webauthn-autocomplete input the autofill (conditional) request
	// completes by itself when a passkey exists.
	step := func(name, page, setup, button, wantPath, wantError string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(browser, 20*time.Second)
		defer cancel()
		err := chromedp.Do(sctx, chromedp.Navigate(origin+page))
		if err == nil && setup != "" {
			_, err = chromedp.Run(sctx, chromedp.Evaluate[chromedp.Void](setup))
		}
		if err == nil && button != "" {
			err = chromedp.Do(sctx, chromedp.Click(chromedp.CSS(button)))
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if wantPath != "" {
			_, err = waitFor(sctx, `location.pathname === "`+wantPath+`" ? location.pathname : ""`)
		} else {
			var got string
			got, err = waitFor(sctx, `document.getElementById("err") && !document.getElementById("err").hidden ? document.getElementById("err").textContent : ""`)
			if err == nil && got != wantError {
				err = fmt.Errorf("error shown %q, want %q", got, wantError)
			}
		}
		if err != nil {
			state, _ := chromedp.Run(sctx, chromedp.Evaluate[string](`location.pathname + " | " + document.getElementById("err")?.textContent`))
			t.Fatalf("%s: %v (page: %s)", name, err, state)
		}
	}

	// Autofill is pending (no passkey yet); the button aborts it and registers.
	step("register", "/page", "", "#register", "/done/registered", "")
	creds, err := store.CredentialsByUser(ctx, user.ID)
	if err != nil || len(creds) != 1 {
		t.Fatalf("after registration: %d credentials (%v)", len(creds), err)
	}
	if !creds[0].UserVerified || creds[0].Attachment != "platform" || !strings.Contains(strings.Join(creds[0].Transports, ","), "internal") {
		t.Errorf("registered credential = %+v", creds[0])
	}

	step("autofill login", "/page", "", "", "/done/welcome-"+user.ID, "")
	step("button login", "/page?autofill=off", "", "#login", "/done/welcome-"+user.ID, "")
	step("register twice on one device", "/page?autofill=off", "", "#register", "", "MSG-ALREADY")
	step("browser without JSON helpers", "/page?autofill=off", "PublicKeyCredential.parseRequestOptionsFromJSON = undefined", "#login", "", "MSG-UNSUPPORTED")

	if _, err := chromedp.Call(browser, webauthn.SetUserVerified, webauthn.SetUserVerifiedParams{AuthenticatorID: added.AuthenticatorID, IsUserVerified: false}); err != nil {
		t.Fatalf("SetUserVerified: %v", err)
	}
	step("user verification fails", "/page?autofill=off", "", "#login", "", "MSG-CANCELLED")
	if _, err := chromedp.Call(browser, webauthn.SetUserVerified, webauthn.SetUserVerifiedParams{AuthenticatorID: added.AuthenticatorID, IsUserVerified: true}); err != nil {
		t.Fatalf("SetUserVerified: %v", err)
	}

	// Deleted on the server, still on the device: the server's text is shown.
	if err := store.DeleteCredential(ctx, user.ID, creds[0].ID); err != nil {
		t.Fatalf("DeleteCredential: %v", err)
	}
	unknown := passkey.Message(passkey.ErrUnknownCredential, "ja")
	step("deleted passkey", "/page?autofill=off", "", "#login", "", unknown)
	// The page told the browser (signalUnknownCredential), which drops the
	// stale passkey from the authenticator.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := chromedp.Call(browser, webauthn.GetCredentials, webauthn.GetCredentialsParams(added))
		if err != nil {
			t.Fatalf("GetCredentials: %v", err)
		}
		if len(got.Credentials) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("authenticator still holds %d passkeys after signalUnknownCredential", len(got.Credentials))
		}
		time.Sleep(100 * time.Millisecond)
	}

}

// waitFor evaluates expr until it yields a non-empty string. Errors while the
// page navigates away are expected and retried until ctx ends.
func waitFor(ctx context.Context, expr string) (string, error) {
	var lastErr error
	for {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err == nil && got != "" {
			return got, nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %s: %w (last error: %v)", expr, ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
