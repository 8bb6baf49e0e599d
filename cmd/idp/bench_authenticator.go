package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The bench's authenticator: a platform passkey with user verification,
// ES256 keys, "none" attestation, made in Go so that a load run needs no
// browser. Its passkeys live in a JSON file (--keys) so that enrolment
// through F1 happens once per user, not once per run.

// benchCredential is one passkey the authenticator holds.
type benchCredential struct {
	Issuer     string `json:"issuer"`
	RPID       string `json:"rp_id"`
	LoginID    string `json:"login_id"`
	ID         []byte `json:"id"`
	UserHandle []byte `json:"user_handle"`
	Key        []byte `json:"key"` // PKCS#8

	priv *ecdsa.PrivateKey
}

// Flags of the authenticator data (WebAuthn §6.1).
const (
	flagUserPresent  = 0x01
	flagUserVerified = 0x04
	flagAttested     = 0x40
)

var b64url = base64.RawURLEncoding

// creationOptions is the part of the registration options the
// authenticator reads ({"publicKey": …} as the server sends it).
type creationOptions struct {
	Challenge string `json:"challenge"`
	RP        struct {
		ID string `json:"id"`
	} `json:"rp"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
}

type requestOptions struct {
	Challenge string `json:"challenge"`
	RPID      string `json:"rpId"`
}

// create makes a new passkey for the registration options and returns it
// with the credential JSON for the finish endpoint.
func create(options json.RawMessage, issuer, origin, loginID string) (*benchCredential, []byte, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, nil, fmt.Errorf("registration options: %w", err)
	}
	if o.Challenge == "" || o.RP.ID == "" || o.User.ID == "" {
		return nil, nil, errors.New("registration options lack the challenge, rp.id or user.id")
	}
	handle, err := b64url.DecodeString(o.User.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("registration options: user.id: %w", err)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	c := &benchCredential{Issuer: issuer, RPID: o.RP.ID, LoginID: loginID, ID: id, UserHandle: handle, Key: pkcs8, priv: priv}

	point, err := priv.PublicKey.ECDH()
	if err != nil {
		return nil, nil, err
	}
	xy := point.Bytes()[1:] // uncompressed: 0x04 ‖ X ‖ Y, fixed width
	var cose []byte
	cose = append(cose, 0xa5)       // map(5)
	cose = append(cose, 0x01, 0x02) // kty: EC2
	cose = append(cose, 0x03, 0x26) // alg: -7 (ES256)
	cose = append(cose, 0x20, 0x01) // crv: P-256
	cose = append(cose, 0x21)       // x
	cose = cborBytes(cose, xy[:32])
	cose = append(cose, 0x22) // y
	cose = cborBytes(cose, xy[32:])

	auth := c.authData(flagUserPresent | flagUserVerified | flagAttested)
	auth = append(auth, make([]byte, 16)...) // AAGUID: none
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(id)))
	auth = append(auth, id...)
	auth = append(auth, cose...)

	var att []byte
	att = append(att, 0xa3) // map(3)
	att = cborText(att, "fmt")
	att = cborText(att, "none")
	att = cborText(att, "attStmt")
	att = append(att, 0xa0) // {}
	att = cborText(att, "authData")
	att = cborBytes(att, auth)

	clientData, err := clientDataJSON("webauthn.create", o.Challenge, origin)
	if err != nil {
		return nil, nil, err
	}
	body, err := json.Marshal(map[string]any{
		"id": b64url.EncodeToString(id), "rawId": b64url.EncodeToString(id), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64url.EncodeToString(clientData),
			"attestationObject": b64url.EncodeToString(att),
			"transports":        []string{"internal"},
		},
	})
	return c, body, err
}

// assert signs the login options' challenge with c, as a usernameless
// (discoverable) login: the user handle tells the server who it is.
func (c *benchCredential) assert(options *ceremonyAnswer, origin string) ([]byte, error) {
	var o requestOptions
	if err := json.Unmarshal(options.PublicKey, &o); err != nil {
		return nil, fmt.Errorf("login options: %w", err)
	}
	if o.Challenge == "" {
		return nil, errors.New("login options without a challenge")
	}
	if o.RPID != "" && o.RPID != c.RPID {
		return nil, fmt.Errorf("login options for rp %q, the passkey is for %q", o.RPID, c.RPID)
	}
	clientData, err := clientDataJSON("webauthn.get", o.Challenge, origin)
	if err != nil {
		return nil, err
	}
	auth := c.authData(flagUserPresent | flagUserVerified)
	cdHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(auth, cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.priv, digest[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64url.EncodeToString(c.ID), "rawId": b64url.EncodeToString(c.ID), "type": "public-key",
		"authenticatorAttachment": "platform", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON":    b64url.EncodeToString(clientData),
			"authenticatorData": b64url.EncodeToString(auth),
			"signature":         b64url.EncodeToString(sig),
			"userHandle":        b64url.EncodeToString(c.UserHandle),
		},
	})
}

// authData is rpIdHash ‖ flags ‖ signCount. The count stays 0: an
// authenticator without a counter, so concurrent logins with one passkey
// never look like a clone.
func (c *benchCredential) authData(flags byte) []byte {
	h := sha256.Sum256([]byte(c.RPID))
	out := append(h[:], flags)
	return binary.BigEndian.AppendUint32(out, 0)
}

func clientDataJSON(typ, challenge, origin string) ([]byte, error) {
	return json.Marshal(struct {
		Type        string `json:"type"`
		Challenge   string `json:"challenge"`
		Origin      string `json:"origin"`
		CrossOrigin bool   `json:"crossOrigin"`
	}{typ, challenge, origin, false})
}

// cborText and cborBytes append a CBOR text or byte string (major types 3
// and 2); the authenticator needs nothing longer than 65535 bytes.
func cborText(b []byte, s string) []byte { return cborHead(b, 0x60, len(s), []byte(s)) }

func cborBytes(b, v []byte) []byte { return cborHead(b, 0x40, len(v), v) }

func cborHead(b []byte, major byte, n int, v []byte) []byte {
	switch {
	case n < 24:
		b = append(b, major|byte(n))
	case n < 256:
		b = append(b, major|24, byte(n))
	default:
		b = append(b, major|25)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	}
	return append(b, v...)
}

// passkeyFile is the --keys file.
type passkeyFile struct {
	path  string
	Creds []*benchCredential `json:"passkeys"`
}

func loadPasskeys(path string) (*passkeyFile, error) {
	f := &passkeyFile{path: path}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read passkeys: %w", err)
	}
	if err := json.Unmarshal(raw, f); err != nil {
		return nil, fmt.Errorf("passkeys file %s: %w", path, err)
	}
	for _, c := range f.Creds {
		k, err := x509.ParsePKCS8PrivateKey(c.Key)
		if err != nil {
			return nil, fmt.Errorf("passkeys file %s: key of %s: %w", path, c.LoginID, err)
		}
		priv, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("passkeys file %s: key of %s is not ECDSA", path, c.LoginID)
		}
		c.priv = priv
	}
	return f, nil
}

// forIssuer is the passkeys registered at issuer, by login ID.
func (f *passkeyFile) forIssuer(issuer string) map[string]*benchCredential {
	m := map[string]*benchCredential{}
	for _, c := range f.Creds {
		if c.Issuer == issuer {
			m[c.LoginID] = c
		}
	}
	return m
}

// save writes the file atomically, readable by the owner only: the keys
// sign in as these users.
func (f *passkeyFile) save() error {
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".passkeys-*")
	if err != nil {
		return fmt.Errorf("save passkeys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save passkeys: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save passkeys: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("save passkeys: %w", err)
	}
	return nil
}
