package op

import (
	"log/slog"
	"slices"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// authRequest presents a stored authorization request to zitadel.
type authRequest struct {
	r *storage.AuthRequest
	// replayed: the code was exchanged before. zitadel authenticates the
	// client only after loading the request by its code, so the grant is
	// revoked when tokens are about to be created, which zitadel reaches
	// only for the authenticated client the code was issued to.
	replayed bool
}

var (
	_ zop.AuthRequest    = authRequest{}
	_ zop.LogAuthRequest = authRequest{}
)

func (a authRequest) GetID() string          { return a.r.ID }
func (a authRequest) GetACR() string         { return a.r.ACR }
func (a authRequest) GetAMR() []string       { return slices.Clone(a.r.AMR) }
func (a authRequest) GetAudience() []string  { return []string{a.r.ClientID} }
func (a authRequest) GetAuthTime() time.Time { return a.r.AuthTime }
func (a authRequest) GetClientID() string    { return a.r.ClientID }
func (a authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.r.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.r.CodeChallenge, Method: oidc.CodeChallengeMethod(a.r.CodeChallengeMethod)}
}
func (a authRequest) GetNonce() string                   { return a.r.Nonce }
func (a authRequest) GetRedirectURI() string             { return a.r.RedirectURI }
func (a authRequest) GetResponseType() oidc.ResponseType { return oidc.ResponseType(a.r.ResponseType) }
func (a authRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(a.r.ResponseMode) }
func (a authRequest) GetScopes() []string                { return slices.Clone(a.r.Scopes) }
func (a authRequest) GetState() string                   { return a.r.State }
func (a authRequest) GetSubject() string                 { return a.r.UserID }
func (a authRequest) Done() bool                         { return a.r.Done }

func (a authRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", a.r.ID),
		slog.String("client", a.r.ClientID),
		slog.String("redirect_uri", a.r.RedirectURI),
	)
}

// refreshRequest is a validated refresh token about to be rotated. It
// carries amr, acr and auth_time so that refreshed ID tokens keep them.
type refreshRequest struct {
	token  *storage.RefreshToken
	scopes []string // possibly narrowed by the client (RFC 6749 section 6)
}

var _ zop.RefreshTokenRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetAMR() []string            { return slices.Clone(r.token.AMR) }
func (r *refreshRequest) GetAudience() []string       { return slices.Clone(r.token.Audience) }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.token.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.token.ClientID }
func (r *refreshRequest) GetScopes() []string         { return slices.Clone(r.scopes) }
func (r *refreshRequest) GetSubject() string          { return r.token.Subject }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = slices.Clone(s) }
