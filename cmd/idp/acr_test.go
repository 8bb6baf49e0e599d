package main

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/comstockloan/idp/cmd/idp/internal/devstack"
	"github.com/comstockloan/idp/storage/storagetest"
)

// bankRP is the bank's server as zitadel's rp package runs it: discovery,
// PKCE, the code exchange and ID token verification (signature, issuer,
// audience, nonce), refusing an ID token whose acr is not one of accept.
func bankRP(t *testing.T, st *devstack.Stack, nonce string, accept ...string) rp.RelyingParty {
	t.Helper()
	verify := []rp.VerifierOption{rp.WithNonce(func(context.Context) string { return nonce })}
	if len(accept) > 0 {
		verify = append(verify, rp.WithACRVerifier(oidc.DefaultACRVerifier(accept)))
	}
	party, err := rp.NewRelyingPartyOIDC(t.Context(), st.IdPURL, bankClientID, bankSecret, bankRedirect, []string{oidc.ScopeOpenID},
		rp.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}), rp.WithSigningAlgsFromDiscovery(), rp.WithVerifierOpts(verify...))
	if err != nil {
		t.Fatalf("bank RP: %v", err)
	}
	return party
}

// acrRequest is one sign-in the bank starts with zitadel's AuthURL.
type acrRequest struct {
	party rp.RelyingParty
	pk    pkce
	url   string
}

func newACRRequest(t *testing.T, st *devstack.Stack, acrValues string, accept []string, extra ...rp.URLParamOpt) acrRequest {
	t.Helper()
	nonce := rand.Text()
	party := bankRP(t, st, nonce, accept...)
	pk := newPKCE()
	opts := []rp.AuthURLOpt{rp.WithCodeChallenge(pk.challenge)}
	params := append([]rp.URLParamOpt{rp.WithURLParam("nonce", nonce), rp.WithURLParam("acr_values", acrValues)}, extra...)
	for _, p := range params {
		opts = append(opts, rp.AuthURLOpt(p))
	}
	return acrRequest{party: party, pk: pk, url: rp.AuthURL("st", party, opts...)}
}

// redeem follows next to the bank's callback, where the bank exchanges
// the code and verifies the ID token with the library; it fails the test
// when the library refuses the token.
func (a acrRequest) redeem(cu *customer, next string) *oidc.IDTokenClaims {
	cu.t.Helper()
	_, callback, body := cu.follow(next)
	u, err := url.Parse(callback)
	if err != nil || !strings.HasPrefix(callback, bankRedirect) || u.Query().Get("code") == "" {
		cu.t.Fatalf("no code at %q\n%s", callback, body)
	}
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](cu.t.Context(), u.Query().Get("code"), a.party, rp.WithCodeVerifier(a.pk.verifier))
	if err != nil {
		cu.t.Fatalf("the bank's library refused the login: %v", err)
	}
	return tokens.IDTokenClaims
}

// passwordThenCode signs in at S1 with ID + password and, when the OP
// asks for it, the mailed code (declining the passkey offer and S5),
// returning where the browser was sent last. sawCode reports whether the
// code was asked for.
func (cu *customer) passwordThenCode(start string) (next string, sawCode bool) {
	cu.t.Helper()
	if status, at, body := cu.follow(start); status != http.StatusOK {
		cu.t.Fatalf("authorize: status %d at %s, want S1\n%s", status, at, body)
	}
	seen := len(cu.st.Sink.Messages())
	p := cu.postForm("/login", url.Values{"loginID": {cu.user.LoginID}, "password": {cu.pw}})
	for range 5 {
		if p.status != http.StatusSeeOther {
			cu.t.Fatalf("password login: status %d\n%s", p.status, p.body)
		}
		next = p.header.Get("Location")
		switch {
		case strings.HasPrefix(next, "/login/otp"):
			sawCode = true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			m, err := cu.st.Sink.WaitForNew(ctx, cu.user.Email, seen)
			cancel()
			if err != nil {
				cu.t.Fatal(err)
			}
			code := otpCode.FindStringSubmatch(m.Body)
			if code == nil {
				cu.t.Fatalf("no OTP in %s", m.Body)
			}
			p = cu.postForm("/login/otp", url.Values{"code": {code[1]}})
		case next == "/login/passkey/offer":
			p = cu.postForm("/login/passkey/offer/skip", nil) // 「今はしない」
		case next == "/login/passkey/create":
			p = cu.postForm("/login/passkey/create/skip", nil) // 「パスキー作成なしでログイン」
		default:
			return next, sawCode
		}
	}
	cu.t.Fatalf("password login did not end (last at %s)", next)
	return "", false
}

// A bank that asks for urn:comstockloan:acr:mfa through zitadel's rp
// package gets a password + code login (the library verifies acr mfa)
// and never a password-only one: S1's password goes on to the code, a
// password-only SSO session answers neither an mfa request nor a silent
// (prompt=none) one, the skips of the offer and S5 do not get around the
// code, and a passkey login satisfies it with phr.
func TestStepUpMFAWithARealRPLibrary(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st, c := stackWithCLI(t, flavor)
		acr := st.Config.ACR
		strong := []string{acr.PasswordOTP, acr.Passkey}

		// A password-only session first (a request that demands nothing).
		cu := newCustomer(t, st, c, "kenji")
		plain := newACRRequest(t, st, "", nil)
		next, sawCode := cu.passwordThenCode(plain.url)
		if sawCode {
			t.Fatal("a request without acr_values asked for the code")
		}
		if got := plain.redeem(cu, next).AuthenticationContextClassReference; got != acr.Password {
			t.Fatalf("password login: acr %q, want %q", got, acr.Password)
		}

		// That session does not answer an mfa request, silently or not.
		silent := newACRRequest(t, st, acr.PasswordOTP, strong, rp.WithPromptURLParam(oidc.PromptNone))
		_, at, _ := cu.follow(silent.url)
		if u, _ := url.Parse(at); !strings.HasPrefix(at, bankRedirect) || u.Query().Get("code") != "" || u.Query().Get("error") == "" {
			t.Fatalf("prompt=none with acr_values mfa over a password session ended at %s, want an error and no code", at)
		}
		mfa := newACRRequest(t, st, acr.PasswordOTP, strong)
		status, at, body := cu.follow(mfa.url)
		if status != http.StatusOK || strings.HasPrefix(at, bankRedirect) || !strings.Contains(body, `action="/login"`) {
			t.Fatalf("mfa request over a password session: %d at %s, want S1", status, at)
		}

		// With the password alone, the ways around the code lead nowhere:
		// the offer's and S5's skips, and a silent request for a session.
		thief := newCustomer(t, st, c, "ichiro")
		stolen := newACRRequest(t, st, acr.PasswordOTP, strong)
		if status, at, _ := thief.follow(stolen.url); status != http.StatusOK {
			t.Fatalf("authorize: %d at %s, want S1", status, at)
		}
		thief.expectRedirect("/login/otp", thief.postForm("/login", url.Values{"loginID": {thief.user.LoginID}, "password": {thief.pw}}))
		for _, path := range []string{"/login/passkey/offer/skip", "/login/passkey/create/skip"} {
			p := thief.postForm(path, nil)
			if loc := p.header.Get("Location"); strings.Contains(loc, "/authorize/callback") || strings.HasPrefix(loc, bankRedirect) {
				t.Fatalf("POST %s with the password alone completed the mfa request (%d, %s)", path, p.status, loc)
			}
		}
		if thief.ssoSignsIn() {
			t.Fatal("the password alone opened a session")
		}

		// The password alone leads to the code; with it the bank's library
		// accepts the ID token at mfa.
		next, sawCode = cu.passwordThenCode(mfa.url)
		if !sawCode {
			t.Fatal("the mfa request was answered without the code")
		}
		claims := mfa.redeem(cu, next)
		if claims.AuthenticationContextClassReference != acr.PasswordOTP || !slices.Contains(claims.AuthenticationMethodsReferences, "otp") {
			t.Fatalf("mfa login: acr %q amr %v", claims.AuthenticationContextClassReference, claims.AuthenticationMethodsReferences)
		}

		// A passkey is stronger: it answers an mfa request with phr.
		pk := newCustomer(t, st, c, "michiko")
		pk.enrol()
		pk.browser = newBrowser(t)
		passkeyReq := newACRRequest(t, st, acr.PasswordOTP, strong)
		if status, at, _ := pk.follow(passkeyReq.url); status != http.StatusOK {
			t.Fatalf("authorize: %d at %s, want S1", status, at)
		}
		if got := passkeyReq.redeem(pk, pk.passkeyAssertion()).AuthenticationContextClassReference; got != acr.Passkey {
			t.Fatalf("passkey login for an mfa request: acr %q, want %q", got, acr.Passkey)
		}
	})
}
