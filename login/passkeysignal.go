package login

import (
	"context"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
)

// finishAnswer is a ceremony's success answer to passkey.js: where to go
// and, after a passkey sign-in, what to tell the device on the way
// (signalAllAcceptedCredentials, signalCurrentUserDetails).
type finishAnswer struct {
	Redirect string          `json:"redirect"`
	Signal   *passkey.Signal `json:"signal,omitempty"`
}

// passkeySignal is the Signal API data of user, whose passkey (or session)
// was just proven: their own passkeys as stored now, so a passkey the
// support centre deleted leaves the device without the customer first
// picking it. It is a hint to the browser only, so a failure to list the
// passkeys costs the signal, never the sign-in (nil).
func (h *Handler) passkeySignal(ctx context.Context, user *storage.User) *passkey.Signal {
	if h.passkeys == nil {
		return nil
	}
	creds, err := h.store.CredentialsByUser(ctx, user.ID)
	if err != nil {
		h.log.WarnContext(ctx, "listing passkeys for the signal API", "user", user.ID, "err", err)
		return nil
	}
	sig := h.passkeys.Signal(user, creds)
	return &sig
}
