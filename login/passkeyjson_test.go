package login

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/templates"
)

// TestPasskeyRefusalIsTheOneMapping pins the answer of every ceremony error
// and that its text is the catalogue's, in both languages.
func TestPasskeyRefusalIsTheOneMapping(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
		key    string
	}{
		{&passkey.UnknownCredentialError{CredentialID: "Y3JlZA", RPID: "localhost"}, 401, "unknown_credential", "err.passkey_unknown"},
		{passkey.ErrUnknownCredential, 401, "unknown_credential", "err.passkey_unknown"},
		{fmt.Errorf("wrapped: %w", passkey.ErrCeremonyExpired), 400, "expired", "err.passkey_expired"},
		{passkey.ErrVerification, 401, "verification_failed", "err.passkey_failed"},
		{passkey.ErrWrongFlow, 400, "wrong_flow", "err.passkey_wrong_flow"},
		{passkey.ErrAlreadyRegistered, 409, "already_registered", "err.passkey_already"},
		{fmt.Errorf("create credential: %w", storage.ErrAlreadyExists), 409, "already_registered", "err.passkey_already"},
		{passkey.ErrHasPasskey, 409, "has_passkey", "err.passkey_registered_enrol"},
		{fmt.Errorf("create credential: %w", storage.ErrConflict), 409, "has_passkey", "err.passkey_registered_enrol"},
		{passkey.ErrLocked, 403, "locked", "err.locked"},
	}
	seen := map[string]string{}
	for _, tc := range cases {
		status, code, key, ok := passkeyRefusal(tc.err)
		if !ok || status != tc.status || code != tc.code || key != tc.key {
			t.Errorf("passkeyRefusal(%v) = %d %s %s %v, want %d %s %s", tc.err, status, code, key, ok, tc.status, tc.code, tc.key)
		}
		ja, en := templates.Text("ja", key), templates.Text("en", key)
		if ja == key || en == key || ja == en {
			t.Errorf("%s: ja %q, en %q: missing from the catalogue", key, ja, en)
		}
		if other, dup := seen[ja]; dup && other != code {
			t.Errorf("codes %s and %s show the same text %q", other, code, ja)
		}
		seen[ja] = code
	}
	if _, code, key, ok := passkeyRefusal(errors.New("pq: connection refused")); ok || code != "internal" || key != "err.internal" {
		t.Errorf("a failure of ours = %s %s %v, want internal err.internal and not ok", code, key, ok)
	}
}

// TestPasskeyErrorBodies checks the JSON passkey.js reads, byte for byte
// for an unknown credential, and that a failure of ours says nothing of it.
func TestPasskeyErrorBodies(t *testing.T) {
	h := &Handler{log: slog.New(slog.DiscardHandler)}
	answer := func(err error) (int, string) {
		w := httptest.NewRecorder()
		h.passkeyError(w, httptest.NewRequest(http.MethodPost, pathPasskeyLoginFin, nil), "finish login", err)
		return w.Code, strings.TrimSpace(w.Body.String())
	}
	status, body := answer(fmt.Errorf("finish login: %w", &passkey.UnknownCredentialError{CredentialID: "Y3JlZA", RPID: "localhost"}))
	want := `{"error":"このパスキーは登録されていません。削除された可能性があります。ほかに登録済みのパスキーがある場合は、そのパスキーで「パスキー認証」を行ってください。登録済みのパスキーがない場合は、「パスキー初回登録」からご登録ください。ご不明な場合は、日証金コムストックローンセンターまでお問い合わせください。","code":"unknown_credential","credentialId":"Y3JlZA","rpId":"localhost"}`
	if status != http.StatusUnauthorized || body != want {
		t.Errorf("unknown credential = %d %s, want 401 %s", status, body, want)
	}
	status, body = answer(errors.New("pq: connection refused"))
	if status != http.StatusInternalServerError || strings.Contains(body, "pq") || !strings.Contains(body, `"code":"internal"`) {
		t.Errorf("failure of ours = %d %s", status, body)
	}
	status, body = answer(fmt.Errorf("load: %w", storage.ErrUnavailable))
	if status != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"internal"`) {
		t.Errorf("database away = %d %s, want 503", status, body)
	}
}
