package login

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// fuzzEnv is the login pages over real HTTP on one SQLite store, kept for a
// whole fuzzing run (newEnv is per test). The browser holds one live flow.
type fuzzEnv struct {
	h      *Handler
	store  storage.Store
	srv    *httptest.Server
	client *http.Client
	user   *storage.User
	now    time.Time
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	store := storagetest.New(f, "sqlite")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := testConfig()
	// Fuzzing makes thousands of wrong guesses from one address: the
	// throttle is tested elsewhere and would turn every answer into 429.
	cfg.PasswordThrottle.MaxPerLoginID, cfg.PasswordThrottle.MaxPerAddress = 1<<30, 1<<30
	// No mail is sent here: the OTP is put on the flow directly.
	mailer := &mail.SMTPSender{Host: "127.0.0.1", Port: 1, TLS: mail.TLSNone, From: cfg.OTP.From, Timeout: time.Second}
	h, err := New(cfg, Deps{Store: store, OP: testOP{store}, Mailer: mailer, Logger: logger})
	if err != nil {
		f.Fatal(err)
	}
	e := &fuzzEnv{h: h, store: store, now: time.Now().UTC()}
	h.now = func() time.Time { return e.now }
	r := mux.NewRouter()
	h.Register(r)
	e.srv = httptest.NewServer(r)
	f.Cleanup(e.srv.Close)
	jar, _ := cookiejar.New(nil)
	e.client = &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	ctx := context.Background()
	hash, err := password.Hash(tinyArgon, "correct-horse-9")
	if err != nil {
		f.Fatal(err)
	}
	e.user = &storage.User{ID: uuid.NewString(), LoginID: "loan0001", Email: "taro@example.jp", DisplayName: "山田 太郎",
		PasswordHash: hash, CreatedAt: e.now, UpdatedAt: e.now}
	if err := store.CreateUser(ctx, e.user); err != nil {
		f.Fatal(err)
	}
	ar := &storage.AuthRequest{ID: uuid.NewString(), ClientID: "demo", RedirectURI: "https://rp.example/cb", State: "st",
		Nonce: "n", Scopes: []string{"openid"}, ResponseType: "code", CodeChallenge: "abc", CodeChallengeMethod: "S256",
		CreatedAt: e.now, ExpiresAt: e.now.Add(time.Hour)}
	if err := store.CreateAuthRequest(ctx, ar); err != nil {
		f.Fatal(err)
	}
	res, err := e.client.Get(e.srv.URL + pathLogin + "?authRequestID=" + ar.ID)
	if err != nil {
		f.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		f.Fatalf("S1: status %d", res.StatusCode)
	}
	return e
}

func (e *fuzzEnv) flow(t testing.TB) *storage.LoginFlow {
	t.Helper()
	u, _ := url.Parse(e.srv.URL)
	for _, c := range e.client.Jar.Cookies(u) {
		if c.Name == flowCookie {
			fl, err := e.store.LoginFlowByID(context.Background(), storage.HashSecret(c.Value))
			if err != nil {
				t.Fatalf("loading the flow: %v", err)
			}
			return fl
		}
	}
	t.Fatal("the browser has no flow cookie")
	return nil
}

func (e *fuzzEnv) post(t *testing.T, path string, form url.Values) (int, string) {
	t.Helper()
	res, err := e.client.PostForm(e.srv.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header.Get("Location")
}

// refusal is the status a browser sees for a form answer: a 303 back to
// page (post/redirect/get) is followed, and the GET shows the refusal
// with its status.
func (e *fuzzEnv) refusal(t *testing.T, status int, loc, page string) int {
	t.Helper()
	if status != http.StatusSeeOther || loc != page {
		return status
	}
	res, err := e.client.Get(e.srv.URL + page)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// storableLoginID is what may reach the store as a login ID, written out
// independently of storableText: valid UTF-8, no control character (NUL
// included), at most maxLoginIDLength bytes, nothing to trim.
func storableLoginID(s string) bool {
	return s != "" && len(s) <= maxLoginIDLength && utf8.ValidString(s) &&
		!strings.ContainsFunc(s, unicode.IsControl) && strings.TrimSpace(s) == s
}

// FuzzLoginIDInput types arbitrary login IDs into S2 (「パスキー初回登録」,
// the only form that stores the ID as typed) and S1's ID/password form.
// The normalised ID that S2 stores is storable and already normal; anything
// else is a 400 that leaves the flow as it was. S1 answers 400 or 401,
// never a 500, and its throttle key is always storable text.
func FuzzLoginIDInput(f *testing.F) {
	e := newFuzzEnv(f)
	f.Add("loan0001")
	f.Fuzz(func(t *testing.T, raw string) {
		before := e.flow(t)
		norm := strings.TrimSpace(raw)
		if strings.TrimSpace(norm) != norm {
			t.Fatalf("trimming %q is not idempotent", raw)
		}
		key := throttleKeyLoginID(norm)
		if !utf8.ValidString(key) || strings.ContainsFunc(key, unicode.IsControl) || len(key) > len("login:")+maxLoginIDLength+64 {
			t.Fatalf("throttle key %q of %q is no storable text", key, raw)
		}

		status, loc := e.post(t, pathPasskey, url.Values{"loginID": {raw}})
		after := e.flow(t)
		switch {
		case status == http.StatusSeeOther && loc == pathPassword:
			if after.LoginID != norm || !storableLoginID(after.LoginID) {
				t.Fatalf("S2 stored login ID %q for input %q", after.LoginID, raw)
			}
		case status == http.StatusBadRequest:
			if storableLoginID(norm) && len(url.Values{"loginID": {raw}}.Encode()) <= maxFormBytes {
				t.Fatalf("S2 refused the storable login ID %q", norm)
			}
			if after.Version != before.Version || after.LoginID != before.LoginID {
				t.Fatalf("refused input %q changed the flow: %+v -> %+v", raw, before, after)
			}
		default:
			t.Fatalf("S2 answered %d (Location %q) to login ID %q", status, loc, raw)
		}

		status, loc = e.post(t, pathLogin, url.Values{"loginID": {raw}, "password": {"wrong-password"}})
		status = e.refusal(t, status, loc, pathLogin)
		want := http.StatusUnauthorized
		if norm == "" || len(url.Values{"loginID": {raw}, "password": {"wrong-password"}}.Encode()) > maxFormBytes {
			want = http.StatusBadRequest
		}
		if status != want {
			t.Fatalf("S1 answered %d to login ID %q with a wrong password, want %d", status, raw, want)
		}
	})
}

var sixASCIIDigits = regexp.MustCompile(`^[0-9]{6}$`)

// FuzzOTPInput posts arbitrary codes to S4 against a flow holding a known
// code. Only the issued code (as normalizeOTP reads what a customer types:
// full-width digits, spaces, hyphens) verifies; a well-formed wrong code costs
// exactly one attempt, anything else is a 400 that costs none, and the flow
// never moves on without the right code.
func FuzzOTPInput(f *testing.F) {
	e := newFuzzEnv(f)
	ctx := context.Background()
	f.Add(uint32(123456), "123456")
	f.Fuzz(func(t *testing.T, n uint32, input string) {
		issued := fmt.Sprintf("%06d", n%1_000_000)
		fl := e.flow(t)
		fl.UserID, fl.LoginID, fl.Purpose, fl.Step = e.user.ID, e.user.LoginID, purposeEnrol, stepOTP
		fl.PasswordVerifiedAt, fl.OTPVerifiedAt = timePtr(e.now), nil
		fl.OTPHash, fl.OTPExpiresAt, fl.OTPAttempts, fl.OTPSentAt = e.h.otpHash(fl.ID, issued), timePtr(e.now.Add(10*time.Minute)), 0, timePtr(e.now)
		if err := e.store.UpdateLoginFlow(ctx, fl); err != nil {
			t.Fatal(err)
		}

		status, loc := e.post(t, pathOTP, url.Values{"code": {input}})
		if loc != pathCreate {
			status = e.refusal(t, status, loc, pathOTP)
		}
		after := e.flow(t)
		// normalizeOTP has its own table test; here it is the oracle of
		// what a customer may type, and its output must be six digits.
		code, wellFormed := normalizeOTP(input)
		if wellFormed && !sixASCIIDigits.MatchString(code) {
			t.Fatalf("normalizeOTP(%q) = %q, not six ASCII digits", input, code)
		}
		tooBig := len(url.Values{"code": {input}}.Encode()) > maxFormBytes
		switch {
		case wellFormed && code == issued && !tooBig:
			if status != http.StatusSeeOther || loc != pathCreate || after.Step != stepCreate || after.OTPVerifiedAt == nil || after.OTPHash != "" {
				t.Fatalf("the issued code %q (input %q) did not verify: %d %q, flow %+v", issued, input, status, loc, after)
			}
			return
		case after.Step != stepOTP || after.OTPVerifiedAt != nil || after.OTPHash == "":
			t.Fatalf("input %q verified against issued %q: %d %q, flow %+v", input, issued, status, loc, after)
		case wellFormed && !tooBig:
			if status != http.StatusUnauthorized || after.OTPAttempts != 1 {
				t.Fatalf("wrong code %q: %d with %d attempts, want 401 and 1", input, status, after.OTPAttempts)
			}
		default:
			if status != http.StatusBadRequest || after.OTPAttempts != 0 {
				t.Fatalf("malformed code %q: %d with %d attempts, want 400 and 0", input, status, after.OTPAttempts)
			}
		}
	})
}
