package op

import (
	"context"
	"errors"
	"fmt"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// IDTokenHintSubject returns the subject of an ID token this provider
// signed. An expired token still names its subject (RP-initiated logout
// usually comes long after the token expired); a forged or foreign one is
// an error.
func (p *Provider) IDTokenHintSubject(ctx context.Context, hint string) (string, error) {
	ctx = zop.ContextWithIssuer(ctx, p.cfg.Issuer)
	claims, err := zop.VerifyIDTokenHint[*oidc.IDTokenClaims](ctx, hint, p.zop.IDTokenHintVerifier(ctx))
	var expired zop.IDTokenHintExpiredError
	if err != nil && !errors.As(err, &expired) {
		return "", fmt.Errorf("id_token_hint: %w", err)
	}
	if claims == nil || claims.Subject == "" {
		return "", errors.New("id_token_hint: no subject")
	}
	return claims.Subject, nil
}
