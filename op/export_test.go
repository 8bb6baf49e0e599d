package op

import "time"

// SetSecretCheckHook makes every bcrypt comparison of a client secret call
// f first, inside its check slot; tests count and hold checks with it. Set
// it before the provider serves.
func SetSecretCheckHook(p *Provider, f func()) { p.storage.secrets.hook = f }

// SetSecretCheckJoined makes every check that shares a comparison already
// running call f before it waits. Set it before the provider serves.
func SetSecretCheckJoined(p *Provider, f func()) { p.storage.secrets.joined = f }

// SetSecretCheckWait sets how long a check waits for a free slot before the
// request is answered temporarily_unavailable.
func SetSecretCheckWait(p *Provider, d time.Duration) { p.storage.secrets.wait = d }
