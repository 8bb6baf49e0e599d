// Package demorp is a stand-in for the loan website in development and in
// the end-to-end tests: a relying party that signs in through the IdP with
// the authorization code flow and PKCE, shows the ID token's claims, links to
// the IdP's passkey settings (「各種お手続き」), logs out RP-initiated, and
// receives back-channel logouts (backchannel.go): when the IdP ends the
// session the demo signed in with, the demo's page says so.
//
// It keeps its own session in an encrypted cookie: it is a demo of a client,
// not part of the IdP, whose state lives in the database.
package demorp

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// Config names the client the demo plays.
type Config struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// BaseURL is where the demo itself is served, e.g. http://localhost:8081.
	BaseURL string
}

const sessionCookie = "demo_rp_session"

// RP is the demo relying party's HTTP handler.
type RP struct {
	cfg     Config
	rp      rp.RelyingParty
	cookies *httphelper.CookieHandler
	logger  *slog.Logger
	ended   *signedOut
}

// New discovers the issuer and returns the demo relying party. The IdP must
// already be serving.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*RP, error) {
	hashKey, encKey := make([]byte, 32), make([]byte, 32)
	rand.Read(hashKey)
	rand.Read(encKey)
	cookies := httphelper.NewCookieHandler(hashKey, encKey, httphelper.WithUnsecure(), httphelper.WithSameSite(http.SameSiteLaxMode))
	party, err := rp.NewRelyingPartyOIDC(ctx, cfg.Issuer, cfg.ClientID, cfg.ClientSecret,
		strings.TrimRight(cfg.BaseURL, "/")+"/callback",
		[]string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess},
		rp.WithPKCE(cookies),
		rp.WithCookieHandler(cookies),
		rp.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}),
		rp.WithSigningAlgsFromDiscovery(),
		rp.WithVerifierOpts(rp.WithIssuedAtOffset(5*time.Second)),
		rp.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, errorType, desc, state string) {
			logger.Info("demo RP: IdP returned an error", "oauth_error", errorType, "description", desc)
			renderTop(w, http.StatusOK, topPage{Error: errorType + ": " + desc})
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("demo RP discovery of %s: %w", cfg.Issuer, err)
	}
	return &RP{cfg: cfg, rp: party, cookies: cookies, logger: logger, ended: newSignedOut()}, nil
}

// Handler serves the TOP page, /login, /callback, /logout and the
// back-channel logout receiver.
func (d *RP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.top)
	mux.HandleFunc("GET /login", d.login)
	mux.Handle("GET /callback", rp.CodeExchangeHandler(d.callback, d.rp))
	mux.HandleFunc("POST /logout", d.logout)
	mux.HandleFunc("POST "+BackchannelLogoutPath, d.backchannelLogout)
	return mux
}

// login forwards the optional prompt, max_age, acr_values and login_hint
// query parameters to the authorization request, so tests and developers
// can try each of them from the address bar.
func (d *RP) login(w http.ResponseWriter, r *http.Request) {
	var opts []rp.URLParamOpt
	q := r.URL.Query()
	if p := q.Get("prompt"); p != "" {
		opts = append(opts, rp.WithPromptURLParam(strings.Fields(p)...))
	}
	for _, name := range []string{"max_age", "acr_values", "login_hint", "ui_locales"} {
		if v := q.Get(name); v != "" {
			opts = append(opts, rp.WithURLParam(name, v))
		}
	}
	rp.AuthURLHandler(randomState, d.rp, opts...)(w, r)
}

func (d *RP) callback(w http.ResponseWriter, r *http.Request, tokens *oidc.Tokens[*oidc.IDTokenClaims], _ string, _ rp.RelyingParty) {
	if err := d.cookies.SetCookie(w, sessionCookie, tokens.IDToken); err != nil {
		d.logger.Error("demo RP: store session", "err", err)
		http.Error(w, "could not store the session", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/", http.StatusFound)
}

func (d *RP) top(w http.ResponseWriter, r *http.Request) {
	page := topPage{AccountURL: strings.TrimRight(d.cfg.Issuer, "/") + "/account/passkeys?return_to=" + url.QueryEscape(d.cfg.BaseURL+"/")}
	if raw, err := d.cookies.CheckCookie(r, sessionCookie); err == nil {
		claims, err := rp.VerifyIDToken[*oidc.IDTokenClaims](r.Context(), raw, d.rp.IDTokenVerifier())
		// An expired ID token only means the demo session is over.
		switch {
		case err == nil && d.ended.ended(claims):
			d.cookies.DeleteCookie(w, sessionCookie)
			page.SignedOutByIdP = true
		case err == nil:
			page.Claims = claimRows(claims)
			page.Subject = claims.Subject
		}
	}
	renderTop(w, http.StatusOK, page)
}

func (d *RP) logout(w http.ResponseWriter, r *http.Request) {
	idToken, _ := d.cookies.CheckCookie(r, sessionCookie)
	d.cookies.DeleteCookie(w, sessionCookie)
	end := d.rp.GetEndSessionEndpoint()
	if end == "" {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	q := url.Values{"client_id": {d.cfg.ClientID}, "post_logout_redirect_uri": {d.cfg.BaseURL + "/"}}
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	http.Redirect(w, r, end+"?"+q.Encode(), http.StatusFound)
}

func randomState() string { return rand.Text() }

type claimRow struct{ Name, Value string }

// claimRows lists the claims a developer wants to see first (those that tell
// how the user signed in), then the rest in name order.
func claimRows(c *oidc.IDTokenClaims) []claimRow {
	raw, _ := json.Marshal(c)
	var all map[string]any
	_ = json.Unmarshal(raw, &all)
	first := []string{"sub", "preferred_username", "amr", "acr", "auth_time"}
	var rows []claimRow
	for _, k := range first {
		if v, ok := all[k]; ok {
			rows = append(rows, claimRow{k, formatClaim(k, v)})
			delete(all, k)
		}
	}
	rest := make([]string, 0, len(all))
	for k := range all {
		rest = append(rest, k)
	}
	sort.Strings(rest)
	for _, k := range rest {
		rows = append(rows, claimRow{k, formatClaim(k, all[k])})
	}
	return rows
}

func formatClaim(name string, v any) string {
	switch t := v.(type) {
	case float64:
		if name == "auth_time" || name == "iat" || name == "exp" {
			return fmt.Sprintf("%d (%s)", int64(t), time.Unix(int64(t), 0).UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("%v", int64(t))
	case []any:
		parts := make([]string, len(t))
		for i, p := range t {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, " ")
	default:
		return fmt.Sprint(t)
	}
}

type topPage struct {
	// SignedOutByIdP: a back-channel logout ended the session this page
	// would have shown.
	SignedOutByIdP bool
	Subject        string
	Claims         []claimRow
	AccountURL     string
	Error          string
}

func renderTop(w http.ResponseWriter, status int, p topPage) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = topTemplate.Execute(w, p)
}

var topTemplate = template.Must(template.New("top").Parse(`<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>コムストックローン (デモ)</title>
<style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}table{border-collapse:collapse}td{border:1px solid #ccc;padding:.3rem .5rem;word-break:break-all}.err{color:#b00020}</style>
</head><body>
<h1>COM-STOCK LOAN 日証金 <small>(デモ RP)</small></h1>
{{if .Error}}<p class="err" id="rp-error">{{.Error}}</p>{{end}}
{{if .SignedOutByIdP}}<p id="signed-out-by-idp">IdP によりログアウトされました（signed out by the IdP: back-channel logout）。</p>{{end}}
{{if .Subject}}
<p id="signed-in">ログイン中です。</p>
<table id="claims">{{range .Claims}}<tr><td>{{.Name}}</td><td data-claim="{{.Name}}">{{.Value}}</td></tr>{{end}}</table>
<p><a id="account" href="{{.AccountURL}}">各種お手続き（パスキー設定状況確認）</a></p>
<form method="post" action="/logout"><button id="logout" type="submit">ログアウト</button></form>
{{else}}
<p><a id="login" href="/login">ログイン</a></p>
{{end}}
</body></html>
`))
