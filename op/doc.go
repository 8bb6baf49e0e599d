// Package op is the OpenID provider: it adapts storage.Store to the zitadel
// op.Storage contract and enforces the provider's protocol rules (code flow
// with S256 PKCE only, exact redirect URIs, refresh rotation, RFC 9207 iss),
// and delivers OpenID Connect Back-Channel Logout tokens (backchannel.go).
package op
