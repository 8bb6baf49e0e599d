package login

import (
	"github.com/comstockloan/idp/login/passkey"
)

// finishAnswer is a ceremony's success answer to passkey.js: where to go
// and, after a passkey sign-in, what to tell the device on the way
// (signalAllAcceptedCredentials, signalCurrentUserDetails).
type finishAnswer struct {
	Redirect string          `json:"redirect"`
	Signal   *passkey.Signal `json:"signal,omitempty"`
}

// passkeySignal is the Signal API data of the user whose passkey res
// proved: their own passkeys as the sign-in read them along with the one
// used (FinishLogin), so a passkey the support centre deleted leaves the
// device without the customer first picking it, at no extra read.
func (h *Handler) passkeySignal(res *PasskeyLogin) *passkey.Signal {
	sig := h.passkeys.Signal(res.User, res.Credentials)
	return &sig
}
