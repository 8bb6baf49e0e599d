package op

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"

	"github.com/comstockloan/idp/storage"
)

// opStorage implements zop.Storage over Store. It keeps no state of
// its own between requests besides the immutable configuration.
type opStorage struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	clients map[string]*client
	keys    *keyManager
	secrets *secretChecker
	now     func() time.Time
}

var (
	_ zop.Storage                        = (*opStorage)(nil)
	_ zop.CanSetUserinfoFromRequest      = (*opStorage)(nil)
	_ zop.CanTerminateSessionFromRequest = (*opStorage)(nil)
)

// errUnknownClient is an oidc error so that every endpoint answers it as a
// client fault (4xx) rather than a server_error.
func errUnknownClient(id string) error {
	return oidc.ErrInvalidClient().WithDescription("unknown client").
		WithParent(fmt.Errorf("client %q: %w", id, storage.ErrNotFound))
}

func (s *opStorage) client(id string) (*client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, errUnknownClient(id)
	}
	return c, nil
}

// --- authorization requests and codes ---

func (s *opStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, hintSubject string) (zop.AuthRequest, error) {
	c, err := s.client(req.ClientID)
	if err != nil {
		return nil, err
	}
	// Only the query response mode is offered: it is the one that carries
	// the iss parameter (RFC 9207). Refusing here, after zitadel has checked
	// client and redirect_uri, sends the error to the client; zitadel falls
	// back to the query mode for a form_post or unknown mode.
	if req.ResponseMode != "" && req.ResponseMode != oidc.ResponseModeQuery {
		s.log.InfoContext(ctx, "authorize: unsupported response_mode",
			"client", req.ClientID, "response_mode", string(req.ResponseMode))
		return nil, oidc.ErrInvalidRequest().WithDescription("only response_mode=query is supported")
	}
	// Every client, confidential or not, must use S256 PKCE: zitadel only
	// enforces PKCE for public clients and accepts plain.
	if req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		s.log.InfoContext(ctx, "authorize: refusing request without S256 PKCE",
			"client", req.ClientID, "method", string(req.CodeChallengeMethod))
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge with code_challenge_method=S256 is required")
	}
	if req.ResponseType != oidc.ResponseTypeCode {
		return nil, oidc.ErrInvalidRequest().WithDescription("only response_type=code is supported")
	}
	// zitadel keeps the standard scopes whatever the client may use.
	scopes := slices.DeleteFunc(slices.Clone(req.Scopes), func(sc string) bool { return !c.IsScopeAllowed(sc) })
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	// What the client sends is stored and echoed back: text PostgreSQL
	// cannot store (NUL, invalid UTF-8) or absurd lengths are the client's
	// error, not ours.
	for name, v := range map[string]string{
		"state": req.State, "nonce": req.Nonce, "login_hint": req.LoginHint, "code_challenge": req.CodeChallenge,
	} {
		if !storableParam(v) {
			s.log.InfoContext(ctx, "authorize: unstorable parameter", "client", req.ClientID, "param", name)
			return nil, oidc.ErrInvalidRequest().WithDescription("%s must be valid UTF-8 text of at most %d bytes", name, maxParamBytes)
		}
	}
	for _, list := range [][]string{scopes, req.Prompt, req.ACRValues} {
		for _, v := range list {
			if !storableParam(v) {
				s.log.InfoContext(ctx, "authorize: unstorable list parameter", "client", req.ClientID)
				return nil, oidc.ErrInvalidRequest().WithDescription("parameters must be valid UTF-8 text")
			}
		}
	}
	now := s.now()
	ar := &storage.AuthRequest{
		ID:                  uuid.NewString(),
		ClientID:            req.ClientID,
		RedirectURI:         req.RedirectURI,
		State:               req.State,
		Nonce:               req.Nonce,
		Scopes:              scopes,
		ResponseType:        string(req.ResponseType),
		ResponseMode:        string(req.ResponseMode),
		CodeChallenge:       req.CodeChallenge,
		CodeChallengeMethod: string(req.CodeChallengeMethod),
		Prompt:              slices.Clone([]string(req.Prompt)),
		LoginHint:           req.LoginHint,
		IDTokenHintSubject:  hintSubject,
		ACRValues:           slices.Clone([]string(req.ACRValues)),
		CreatedAt:           now,
		ExpiresAt:           now.Add(s.cfg.AuthRequestLifetime),
	}
	if req.MaxAge != nil {
		d := time.Duration(*req.MaxAge) * time.Second
		ar.MaxAge = &d
	}
	for _, tag := range req.UILocales {
		ar.UILocales = append(ar.UILocales, tag.String())
	}
	info := requestInfoFrom(ctx)
	info.created = ar
	if info.deferCreate {
		return authRequest{r: ar}, nil
	}
	if err := s.store.CreateAuthRequest(ctx, ar); err != nil {
		return nil, fmt.Errorf("store auth request: %w", err)
	}
	info.stored = true
	return authRequest{r: ar}, nil
}

func (s *opStorage) AuthRequestByID(ctx context.Context, id string) (zop.AuthRequest, error) {
	if !s.storable(ctx, "auth_request_id", id) {
		return nil, oidc.ErrInvalidRequest().WithDescription("unknown or expired authorization request")
	}
	ar, err := s.store.AuthRequestByID(ctx, id)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, oidc.ErrInvalidRequest().WithDescription("unknown or expired authorization request").WithParent(err)
		}
		s.log.ErrorContext(ctx, "authorize callback: load auth request", "auth_request", id, "err", err)
		return nil, fmt.Errorf("load auth request %s: %w", id, err)
	}
	// zitadel reads requests by ID only in the callback. One whose code was
	// exchanged is answered for good. One with a code not yet exchanged is
	// a retry in the browser that started it (guard checked the binding
	// cookie, which the redirect that carries a code spends): the earlier
	// attempt stored its code but its answer went wrong (the database went
	// away before the redirect), so a new code replaces the old one rather
	// than strand the customer.
	if ar.ConsumedAt != nil {
		s.log.InfoContext(ctx, "authorize callback: code already exchanged", "auth_request", id)
		return nil, oidc.ErrInvalidRequest().WithDescription("authorization request already answered")
	}
	if ar.CodeHash != "" {
		s.log.InfoContext(ctx, "authorize callback: retried in its browser, the new code replaces the old", "auth_request", id)
	}
	return authRequest{r: ar}, nil
}

// AuthRequestByCode finds the request of a code. A code already exchanged
// is a replay, but zitadel calls this before it authenticates the client:
// revoking here would let anyone holding a used code (from a browser
// history or a log) revoke a customer's tokens with no secret at all. The
// request goes back marked replayed, and refuseReplay revokes once zitadel
// has checked the PKCE verifier, the client's secret (for a public client
// the verifier is the only proof it has) and that the code is the
// client's own.
func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (zop.AuthRequest, error) {
	if !s.storable(ctx, "code", code) {
		return nil, errors.New("unknown authorization code")
	}
	ar, user, err := s.store.AuthRequestByCode(ctx, storage.HashSecret(code))
	if err != nil {
		// zitadel answers any error here as invalid_grant: the log is
		// the only place a store failure shows.
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.ErrorContext(ctx, "token: load auth request by code", "err", err)
		}
		return nil, fmt.Errorf("load auth request by code: %w", err)
	}
	if ar.ConsumedAt != nil {
		s.log.InfoContext(ctx, "token: used authorization code presented", "auth_request", ar.ID, "client", ar.ClientID)
		return authRequest{r: ar, replayed: true}, nil
	}
	// Checked after the replay test: a late replay still revokes the grant.
	// A zero expiry (a code saved before expiries were stored) is expired.
	if !s.now().Before(ar.CodeExpiresAt) {
		s.log.InfoContext(ctx, "token: authorization code expired",
			"auth_request", ar.ID, "client", ar.ClientID, "code_expired_at", ar.CodeExpiresAt)
		return nil, errors.New("authorization code expired")
	}
	if !ar.Done {
		return nil, errors.New("authorization request not completed")
	}
	// The exchange asks for this user again (the tokens' subject, the ID
	// token's claims): the same read answers.
	rememberUser(ctx, user)
	return authRequest{r: ar}, nil
}

// refuseReplay revokes the grant of a replayed code; zitadel reaches token
// creation only for the authenticated client the code was issued to.
func (s *opStorage) refuseReplay(ctx context.Context, a authRequest) error {
	if !a.replayed {
		return nil
	}
	s.revokeReplayedGrant(ctx, a.r.ID)
	return oidc.ErrInvalidGrant().WithDescription("authorization code already used")
}

func (s *opStorage) revokeReplayedGrant(ctx context.Context, authRequestID string) {
	s.log.WarnContext(ctx, "token: authorization code replayed, revoking its grant", "auth_request", authRequestID)
	if err := s.store.RevokeGrant(ctx, authRequestID, s.now()); err != nil {
		s.log.ErrorContext(ctx, "token: revoke replayed grant", "auth_request", authRequestID, "err", err)
	}
}

func (s *opStorage) SaveAuthCode(ctx context.Context, id, code string) error {
	if err := s.store.SaveAuthCode(ctx, id, storage.HashSecret(code), s.now().Add(s.cfg.CodeLifetime)); err != nil {
		return fmt.Errorf("save auth code of %s: %w", id, err)
	}
	return nil
}

// DeleteAuthRequest keeps the row: a consumed request must stay until it
// expires so that a replayed code is recognised (the sweeper deletes it).
func (s *opStorage) DeleteAuthRequest(context.Context, string) error { return nil }

// exchangeCode marks the code of ar exchanged and stores the tokens it
// buys, atomically. Losing to a concurrent exchange stores nothing and
// revokes what the winner got: two exchanges of one code mean one of them
// is not the client, and RFC 6749 section 4.1.2 says the server SHOULD
// revoke all tokens issued on that code.
func (s *opStorage) exchangeCode(ctx context.Context, ar *storage.AuthRequest, at *storage.AccessToken, rt *storage.RefreshToken) error {
	err := s.store.ExchangeCode(ctx, ar.ID, s.now(), at, rt)
	if errors.Is(err, storage.ErrConflict) {
		s.revokeReplayedGrant(ctx, ar.ID)
		return oidc.ErrInvalidGrant().WithDescription("authorization code already used")
	}
	if errors.Is(err, storage.ErrNotFound) {
		// Ended since AuthRequestByCode read it (EndUserAccess, DeleteUser).
		s.log.InfoContext(ctx, "token: authorization request ended during the exchange", "auth_request", ar.ID, "client", ar.ClientID)
		return oidc.ErrInvalidGrant().WithDescription("authorization code expired").WithParent(err)
	}
	if err != nil {
		return fmt.Errorf("exchange code of %s: %w", ar.ID, err)
	}
	return nil
}

// --- tokens ---

// userMemo holds the users one request has loaded. zitadel asks for the
// token request's user up to three times (the refresh token's owner, the
// tokens' subject, the ID token's claims), all within one request: one read
// answers them. It lives in the request's context only, so a user locked
// or deleted is refused from the next request on.
type userMemo struct {
	mu    sync.Mutex
	users map[string]*storage.User
}

type userMemoKey struct{}

// withUserMemo gives every request its own userMemo.
func withUserMemo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), userMemoKey{}, &userMemo{})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// rememberUser puts u in the request's memo, read with u's request.
func rememberUser(ctx context.Context, u *storage.User) {
	memo, _ := ctx.Value(userMemoKey{}).(*userMemo)
	if memo == nil || u == nil {
		return
	}
	memo.mu.Lock()
	defer memo.mu.Unlock()
	if memo.users == nil {
		memo.users = map[string]*storage.User{}
	}
	memo.users[u.ID] = u
}

func (s *opStorage) activeUser(ctx context.Context, userID string) (*storage.User, error) {
	memo, _ := ctx.Value(userMemoKey{}).(*userMemo)
	if memo != nil {
		memo.mu.Lock()
		u, ok := memo.users[userID]
		memo.mu.Unlock()
		if ok {
			return checkActive(u)
		}
	}
	u, err := s.store.UserByID(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oidc.ErrInvalidGrant().WithDescription("user no longer exists").WithParent(err)
	}
	if err != nil {
		return nil, fmt.Errorf("load user %s: %w", userID, err)
	}
	rememberUser(ctx, u)
	return checkActive(u)
}

func checkActive(u *storage.User) (*storage.User, error) {
	if u.Locked {
		return nil, oidc.ErrInvalidGrant().WithDescription("user is locked")
	}
	return u, nil
}

func (s *opStorage) lifetimes(clientID string) (access, refresh time.Duration) {
	access, refresh = s.cfg.AccessTokenLifetime, s.cfg.RefreshTokenLifetime
	if c, ok := s.clients[clientID]; ok {
		if c.cfg.AccessTokenLifetime > 0 {
			access = c.cfg.AccessTokenLifetime
		}
		if c.cfg.RefreshTokenLifetime > 0 {
			refresh = c.cfg.RefreshTokenLifetime
		}
	}
	return access, refresh
}

func (s *opStorage) newAccessToken(clientID, subject string, audience, scopes []string, authRequestID string) *storage.AccessToken {
	now := s.now()
	access, _ := s.lifetimes(clientID)
	return &storage.AccessToken{
		ID:            uuid.NewString(),
		ClientID:      clientID,
		Subject:       subject,
		Audience:      slices.Clone(audience),
		Scopes:        slices.Clone(scopes),
		AuthRequestID: authRequestID,
		CreatedAt:     now,
		ExpiresAt:     now.Add(access),
	}
}

func (s *opStorage) CreateAccessToken(ctx context.Context, req zop.TokenRequest) (string, time.Time, error) {
	a, ok := req.(authRequest)
	if !ok {
		return "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	if err := s.refuseReplay(ctx, a); err != nil {
		return "", time.Time{}, err
	}
	if _, err := s.activeUser(ctx, a.r.UserID); err != nil {
		return "", time.Time{}, err
	}
	at := s.newAccessToken(a.r.ClientID, a.r.UserID, a.GetAudience(), a.r.Scopes, a.r.ID)
	if err := s.exchangeCode(ctx, a.r, at, nil); err != nil {
		return "", time.Time{}, err
	}
	return at.ID, at.ExpiresAt, nil
}

// newSecret is a bearer secret the client holds (a refresh token, an
// authorization code): 256 random bits, stored only as its hash.
func newSecret(what string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random %s: %w", what, err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (s *opStorage) CreateAccessAndRefreshTokens(ctx context.Context, req zop.TokenRequest, current string) (string, string, time.Time, error) {
	value, err := newSecret("refresh token")
	if err != nil {
		return "", "", time.Time{}, err
	}
	now := s.now()
	switch r := req.(type) {
	case authRequest:
		if err := s.refuseReplay(ctx, r); err != nil {
			return "", "", time.Time{}, err
		}
		if _, err := s.activeUser(ctx, r.r.UserID); err != nil {
			return "", "", time.Time{}, err
		}
		at := s.newAccessToken(r.r.ClientID, r.r.UserID, r.GetAudience(), r.r.Scopes, r.r.ID)
		_, refreshLife := s.lifetimes(r.r.ClientID)
		rt := &storage.RefreshToken{
			ID: storage.HashSecret(value), FamilyID: uuid.NewString(),
			ClientID: r.r.ClientID, Subject: r.r.UserID, Audience: r.GetAudience(), Scopes: slices.Clone(r.r.Scopes),
			AMR: slices.Clone(r.r.AMR), ACR: r.r.ACR, AuthTime: r.r.AuthTime, AuthRequestID: r.r.ID,
			AccessTokenID: at.ID, SessionID: r.r.SessionID, CreatedAt: now, ExpiresAt: now.Add(refreshLife),
		}
		at.RefreshTokenID = rt.ID
		if err := s.exchangeCode(ctx, r.r, at, rt); err != nil {
			return "", "", time.Time{}, err
		}
		return at.ID, value, at.ExpiresAt, nil
	case *refreshRequest:
		old := r.token
		if _, err := s.activeUser(ctx, old.Subject); err != nil {
			return "", "", time.Time{}, err
		}
		at := s.newAccessToken(old.ClientID, old.Subject, old.Audience, r.scopes, old.AuthRequestID)
		_, refreshLife := s.lifetimes(old.ClientID)
		// The successor keeps the family, the granted scopes and how the
		// user authenticated; its lifetime slides with every rotation.
		next := &storage.RefreshToken{
			ID: storage.HashSecret(value), FamilyID: old.FamilyID,
			ClientID: old.ClientID, Subject: old.Subject, Audience: slices.Clone(old.Audience), Scopes: slices.Clone(old.Scopes),
			AMR: slices.Clone(old.AMR), ACR: old.ACR, AuthTime: old.AuthTime, AuthRequestID: old.AuthRequestID,
			AccessTokenID: at.ID, SessionID: old.SessionID, CreatedAt: now, ExpiresAt: now.Add(refreshLife),
		}
		at.RefreshTokenID = next.ID
		err := s.store.RotateRefreshToken(ctx, old.ID, next, at, now)
		if errors.Is(err, storage.ErrRefreshTokenReused) {
			s.log.WarnContext(ctx, "token: refresh token reused, family revoked", "client", old.ClientID, "family", old.FamilyID)
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token already used")
		}
		if err != nil {
			return "", "", time.Time{}, fmt.Errorf("rotate refresh token: %w", err)
		}
		return at.ID, value, at.ExpiresAt, nil
	default:
		return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
}

func (s *opStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (zop.RefreshTokenRequest, error) {
	if !s.storable(ctx, "refresh_token", token) {
		return nil, errors.New("unknown refresh token")
	}
	rt, err := s.store.RefreshTokenByID(ctx, storage.HashSecret(token))
	if err != nil {
		// zitadel answers any error here as invalid_grant.
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.ErrorContext(ctx, "token: load refresh token", "err", err)
		}
		return nil, fmt.Errorf("load refresh token: %w", err)
	}
	if rt.RotatedAt != nil || rt.RevokedAt != nil {
		// A rotated token presented again means one of its holders is not
		// the client: end the whole family.
		s.log.WarnContext(ctx, "token: rotated or revoked refresh token presented, revoking family",
			"client", rt.ClientID, "family", rt.FamilyID)
		if err := s.store.RevokeRefreshToken(ctx, rt.ID, s.now()); err != nil {
			s.log.ErrorContext(ctx, "token: revoke refresh token family", "family", rt.FamilyID, "err", err)
		}
		return nil, errors.New("refresh token already used or revoked")
	}
	if !s.now().Before(rt.ExpiresAt) {
		return nil, errors.New("refresh token expired")
	}
	if _, err := s.activeUser(ctx, rt.Subject); err != nil {
		return nil, err
	}
	return &refreshRequest{token: rt, scopes: slices.Clone(rt.Scopes)}, nil
}

func (s *opStorage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	if !s.storable(ctx, "token", token) {
		return "", "", zop.ErrInvalidRefreshToken
	}
	rt, err := s.store.RefreshTokenByID(ctx, storage.HashSecret(token))
	if errors.Is(err, storage.ErrNotFound) {
		return "", "", zop.ErrInvalidRefreshToken
	}
	if err != nil {
		return "", "", fmt.Errorf("load refresh token: %w", err)
	}
	if rt.ClientID != clientID {
		return "", "", zop.ErrInvalidRefreshToken
	}
	return rt.Subject, rt.ID, nil
}

// RevokeToken answers success for unknown tokens (RFC 7009 section 2.2) and
// ignores tokens of other clients.
func (s *opStorage) RevokeToken(ctx context.Context, tokenID, _ string, clientID string) *oidc.Error {
	// zitadel passes a token it cannot decrypt through as it came, and a
	// "decryption" of a refresh token may be any bytes: such a value names
	// nothing, but the presented token still may (revokeToken).
	if !s.storable(ctx, "token", tokenID) {
		tokenID = ""
	}
	if oerr := s.revokeToken(ctx, tokenID, clientID); oerr != nil {
		s.log.ErrorContext(ctx, "revoke: store failure", "client", clientID, "err", oerr.Parent)
		return oerr
	}
	return nil
}

func (s *opStorage) revokeToken(ctx context.Context, tokenID, clientID string) *oidc.Error {
	if tokenID != "" {
		at, err := s.store.AccessTokenByID(ctx, tokenID)
		switch {
		case err == nil && at.ClientID != clientID:
			s.log.InfoContext(ctx, "revoke: access token belongs to another client", "client", clientID)
			return nil
		case err == nil:
			if err := s.store.DeleteAccessToken(ctx, at.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return oidc.ErrServerError().WithParent(fmt.Errorf("delete access token: %w", err))
			}
			return nil
		case !errors.Is(err, storage.ErrNotFound):
			return oidc.ErrServerError().WithParent(fmt.Errorf("load access token: %w", err))
		}
	}
	// zitadel passes the stored ID of a refresh token it found itself. With
	// token_type_hint=access_token it skips that lookup and "decrypts" the
	// value as an access token; for a refresh token that yields garbage,
	// which now and then even has the tokenID:subject shape. RFC 7009
	// section 2.1 says to search both kinds, so the refresh token is
	// looked up by the value the client presented, kept by guard.
	rt, err := (*storage.RefreshToken)(nil), storage.ErrNotFound
	if tokenID != "" {
		rt, err = s.store.RefreshTokenByID(ctx, tokenID)
	}
	if raw := requestInfoFrom(ctx).revoked; errors.Is(err, storage.ErrNotFound) && s.storable(ctx, "token", raw) {
		rt, err = s.store.RefreshTokenByID(ctx, storage.HashSecret(raw))
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(fmt.Errorf("load refresh token: %w", err))
	}
	if rt.ClientID != clientID {
		s.log.InfoContext(ctx, "revoke: refresh token belongs to another client", "client", clientID)
		return nil
	}
	if err := s.store.RevokeRefreshToken(ctx, rt.ID, s.now()); err != nil {
		return oidc.ErrServerError().WithParent(fmt.Errorf("revoke refresh token: %w", err))
	}
	return nil
}

// liveAccessToken loads an access token and its user, refusing expired
// tokens and locked or deleted users.
func (s *opStorage) liveAccessToken(ctx context.Context, tokenID, subject string) (*storage.AccessToken, *storage.User, error) {
	if !s.storable(ctx, "access_token", tokenID) {
		return nil, nil, errors.New("unknown access token")
	}
	at, err := s.store.AccessTokenByID(ctx, tokenID)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.ErrorContext(ctx, "load access token", "err", err)
		}
		return nil, nil, fmt.Errorf("load access token: %w", err)
	}
	if at.Subject != subject || !s.now().Before(at.ExpiresAt) {
		return nil, nil, errors.New("access token invalid or expired")
	}
	u, err := s.activeUser(ctx, at.Subject)
	if err != nil {
		return nil, nil, err
	}
	return at, u, nil
}

func setUserClaims(info *oidc.UserInfo, u *storage.User, scopes []string) {
	info.Subject = u.ID
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.PreferredUsername = u.LoginID
		info.Name = u.DisplayName
	}
	if slices.Contains(scopes, oidc.ScopeEmail) {
		info.Email = u.Email
		// Addresses are registered and proven by the loan centre.
		info.EmailVerified = true
	}
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	at, u, err := s.liveAccessToken(ctx, tokenID, subject)
	if err != nil {
		s.log.InfoContext(ctx, "userinfo: refused", "err", err)
		return oidc.ErrAccessDenied().WithDescription("access token no longer valid")
	}
	setUserClaims(info, u, at.Scopes)
	return nil
}

func (s *opStorage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	at, u, err := s.liveAccessToken(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	// Only an audience of the token may learn about it.
	if !slices.Contains(at.Audience, clientID) {
		return errors.New("introspecting client is not an audience of the token")
	}
	info := new(oidc.UserInfo)
	setUserClaims(info, u, at.Scopes)
	resp.SetUserInfo(info)
	resp.Scope = at.Scopes
	resp.ClientID = at.ClientID
	resp.TokenType = oidc.BearerToken
	resp.Subject = at.Subject
	resp.Audience = at.Audience
	resp.Issuer = s.cfg.Issuer
	resp.Expiration = oidc.FromTime(at.ExpiresAt)
	resp.IssuedAt = oidc.FromTime(at.CreatedAt)
	resp.JWTID = at.ID
	return nil
}

// SetUserinfoFromScopes is deprecated in zitadel; SetUserinfoFromRequest
// does the work.
func (s *opStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's user claims and its sid (the
// SSO session's public ID). For a refresh it also restores acr, which
// zitadel only copies from authorization requests.
func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req zop.IDTokenRequest, scopes []string) error {
	u, err := s.activeUser(ctx, req.GetSubject())
	if err != nil {
		return err
	}
	setUserClaims(info, u, scopes)
	var sid string
	switch r := req.(type) {
	case authRequest:
		sid = r.r.SessionID
	case *refreshRequest:
		sid = r.token.SessionID
		if r.token.ACR != "" {
			info.AppendClaims("acr", r.token.ACR)
		}
	}
	// zitadel never fills IDTokenClaims.SessionID itself; the relying
	// party matches a logout token's sid against this one.
	if sid != "" {
		info.AppendClaims("sid", sid)
	}
	return nil
}

func (s *opStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// --- clients ---

func (s *opStorage) GetClientByClientID(_ context.Context, id string) (zop.Client, error) {
	return s.client(id)
}

// AuthorizeClientIDSecret is zitadel's check of a client secret. guard has
// already checked the pair of every request that carries one
// (authenticateClient); a pair it has not seen takes the same check.
func (s *opStorage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	info := requestInfoFrom(ctx)
	if v := info.verified; v != nil && v.id == id && v.secret == secret {
		return nil
	}
	if secret == "" {
		s.log.InfoContext(ctx, "client authentication without a secret", "client", id)
		return oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	outcome, err := s.secrets.check(ctx, info.addr, id, secret)
	if err != nil {
		s.log.ErrorContext(ctx, "client authentication", "client", id, "err", err)
		return oidc.ErrServerError().WithParent(err)
	}
	switch outcome {
	case secretOK:
		return nil
	case secretThrottled:
		return oidc.ErrInvalidClient().WithDescription("too many failed client authentications; retry later")
	case secretBusy:
		return oidc.ErrServerError().WithDescription("too many client authentications at once; retry later")
	default:
		return oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
}

// JWT profile grants and client assertions are not offered.
func (s *opStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, oidc.ErrUnauthorizedClient().WithDescription("JWT profile is not supported")
}

func (s *opStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrUnauthorizedClient().WithDescription("JWT profile is not supported")
}

// --- sessions ---

// TerminateSession is a logged no-op: the SSO cookie and its session row are
// removed by package login's middleware around /end_session, and issued
// tokens stay valid until they expire or are revoked (RP-initiated logout
// ends the browser session, not the RP's API access).
func (s *opStorage) TerminateSession(ctx context.Context, userID, clientID string) error {
	s.log.InfoContext(ctx, "end_session", "user", userID, "client", clientID)
	return nil
}

func (s *opStorage) TerminateSessionFromRequest(ctx context.Context, req *zop.EndSessionRequest) (string, error) {
	if err := s.TerminateSession(ctx, req.UserID, req.ClientID); err != nil {
		return "", err
	}
	// zitadel has validated RedirectURI against the client's registered
	// post-logout URIs, or fallen back to the logout landing page.
	return req.RedirectURI, nil
}

// --- keys ---

func (s *opStorage) SigningKey(ctx context.Context) (zop.SigningKey, error) {
	return s.keys.signingKey(ctx)
}

func (s *opStorage) SignatureAlgorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	return s.keys.algorithms(ctx)
}

func (s *opStorage) KeySet(ctx context.Context) ([]zop.Key, error) {
	return s.keys.keySet(ctx)
}

func (s *opStorage) Health(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("store ping: %w", err)
	}
	return nil
}

// maxParamBytes bounds every client value the OP stores or looks up: no
// token, code, ID or parameter we issue or accept comes near it.
const maxParamBytes = 2048

// storableParam is storage.StorableText at the OP's bound.
func storableParam(v string) bool {
	return storage.StorableText(v, maxParamBytes)
}

// storable is the check at every place client input reaches the store:
// a value the database cannot hold is one it does not know, answered as
// unknown instead of as the store's error.
func (s *opStorage) storable(ctx context.Context, param, v string) bool {
	if storableParam(v) {
		return true
	}
	s.log.InfoContext(ctx, "op: unstorable input treated as unknown", "param", param, "bytes", len(v))
	return false
}
