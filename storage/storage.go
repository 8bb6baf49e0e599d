// Package storage is the one persistence contract of the identity provider.
//
// Everything a login needs between two HTTP requests lives behind Store, so
// any replica can continue what another began. The sqlstore sub-package
// implements it for PostgreSQL and SQLite; the conformance sub-package is the
// test suite both must pass.
//
// Secrets that reach the browser (session cookies, login-flow handles, codes,
// refresh tokens, one-time passwords) are stored only as hashes: callers hash
// with HashSecret before they call the store.
//
// Store is the sum of role interfaces (Users, Sessions, AuthRequests, Tokens,
// SigningKeys, LoginFlows, RateLimits, WebAuthnSessions, Credentials,
// KnownDevices, EnrolmentLinks, Audit, Housekeeping, BackchannelLogouts). A
// consumer takes the roles it uses, or declares its own interface of roles
// and single methods (op.Store, login.Store, passkey.Store), so its
// signature says what it may touch.
//
// Files:
//
//	storage.go   the errors, HashSecret, the records, Store and its roles
//	audit.go     the audit trail's keys, MACs, chain links, checkpoints and
//	             the verifier (VerifyAudit)
package storage

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound is returned when the row does not exist (or has expired).
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists is returned on a unique-key violation.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrConflict is returned when an optimistic update lost a race
	// (the row's Version changed since it was read) or a guarded insert's
	// precondition no longer holds.
	ErrConflict = errors.New("storage: conflict")
	// ErrUnavailable wraps a failure to reach the database (connection
	// refused or lost, server shutting down or starting, too many
	// connections, SQLite busy beyond its timeout): the request may succeed
	// later, so callers answer 503, never a 4xx that blames the client.
	ErrUnavailable = errors.New("storage: database unavailable")
	// ErrSessionEnded comes with ErrNotFound when a completion from an SSO
	// session finds the session ended meanwhile (a sign-out elsewhere): a
	// login is needed, the auth request itself may well be alive.
	ErrSessionEnded = errors.New("storage: session ended")
	// ErrRefreshTokenReused is returned by RotateRefreshToken when the
	// presented token was already rotated or revoked; the store has revoked
	// the whole family before returning it.
	ErrRefreshTokenReused = errors.New("storage: refresh token reused")
)

// HashSecret returns the value under which a browser-visible secret is
// stored: unpadded base64url of its SHA-256. The secrets hashed here carry at
// least 128 bits of randomness, so a fast hash is enough.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// User is a customer of the loan website.
type User struct {
	ID           string // opaque, stable; the OIDC subject
	LoginID      string // what the customer types; unique, case-sensitive as issued
	Email        string // registered e-mail address 1: the only OTP destination
	DisplayName  string
	PasswordHash string // PHC string (argon2id, or an imported bcrypt hash)
	// PasswordTemporary marks a 仮パスワード: it must be changed (S7) before
	// anything else, and it cannot be used to enrol a passkey.
	PasswordTemporary bool
	Locked            bool
	// PasskeyOfferSkippedAt is when the customer last answered the passkey
	// offer after a password login with 「今はしない」; nil: never.
	PasskeyOfferSkippedAt *time.Time
	CreatedAt             time.Time
	UpdatedAt             time.Time
}

// Session is the IdP's single sign-on session, referenced by a cookie whose
// value hashes (HashSecret) to ID.
type Session struct {
	ID     string
	UserID string
	// SID is the session's public identifier, the sid claim of the ID
	// tokens it signed and of the logout tokens that end it: random and
	// unrelated to the cookie (ID is the cookie's hash and must stay
	// secret). CreateSession assigns one when empty; a renewal keeps it.
	SID        string
	AuthTime   time.Time // when the user last proved who they are
	AMR        []string  // RFC 8176 methods of that proof
	ACR        string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	// UserAgent is the browser's User-Agent at sign-in, bounded and
	// storable (S8 names the browser and OS from it).
	UserAgent string
	// Clients are the IDs of the websites the session signed in to, in
	// ID order; only SessionsByUser fills it.
	Clients []string
}

// SessionUser is a session read with its user in one query
// (Sessions.SessionWithUser).
type SessionUser struct {
	Session Session
	User    User
	// HasPasskey: the user has at least one passkey.
	HasPasskey bool
}

// AccessEnded counts what EndUserAccess ended: rows that were still live
// (unexpired, not yet rotated or revoked), for the audit trail.
type AccessEnded struct {
	Sessions      int
	AccessTokens  int
	RefreshTokens int
}

// EnrolmentLink is a staff-issued link that lets a customer enrol a
// passkey with the mailed code alone (`idp users enrolment-link`). ID is
// HashSecret of the link's secret. It works once, until ExpiresAt, and only
// while no newer link for the user was issued.
type EnrolmentLink struct {
	ID           string
	UserID       string
	IssuedBy     string // the audit actor, "staff:<name>"
	CreatedAt    time.Time
	ExpiresAt    time.Time
	UsedAt       *time.Time
	SupersededAt *time.Time
}

// BackchannelLogout is one logout token owed to a relying party: a session
// that had signed in to ClientID ended. The store writes it in the
// transaction that deletes the session; the delivery worker claims it,
// posts it, and deletes it once delivered or given up. ID is the token's
// jti, the same on every attempt.
type BackchannelLogout struct {
	ID            string
	ClientID      string
	Subject       string
	SID           string
	CreatedAt     time.Time
	Attempts      int // delivery attempts begun, this claim's included
	NextAttemptAt time.Time
	LastError     string
}

// AuthRequest is an OIDC authorization request from /authorize until its code
// is exchanged (and then kept, consumed, until it expires so that a replayed
// code can be recognised).
type AuthRequest struct {
	ID                  string
	ClientID            string
	RedirectURI         string
	State               string
	Nonce               string
	Scopes              []string
	ResponseType        string
	ResponseMode        string
	CodeChallenge       string
	CodeChallengeMethod string
	Prompt              []string
	MaxAge              *time.Duration // nil when absent; 0 means "authenticate now"
	LoginHint           string
	IDTokenHintSubject  string
	ACRValues           []string
	UILocales           []string
	CreatedAt           time.Time
	ExpiresAt           time.Time

	// Set by CompleteAuthRequest when the user is authenticated.
	UserID   string
	AuthTime time.Time
	AMR      []string
	ACR      string
	Done     bool
	// SessionID is the SID of the SSO session that completed the request
	// (the ID token's sid), empty for a session without one.
	SessionID string

	// CodeHash is HashSecret of the authorization code, once issued.
	CodeHash string
	// CodeExpiresAt ends the code's short life (zero until issued). The
	// request outlives it, consumed or not, so that a late replay is still
	// recognised; the caller refuses an exchange at or after this instant.
	CodeExpiresAt time.Time
	// ConsumedAt is set when the code was exchanged; a second exchange
	// must revoke what the first one issued.
	ConsumedAt *time.Time
}

// AccessToken is an opaque (or JWT-referenced) access token issued to a client.
type AccessToken struct {
	ID             string
	ClientID       string
	Subject        string
	Audience       []string
	Scopes         []string
	AuthRequestID  string // the grant it came from, for code-reuse revocation
	RefreshTokenID string // the refresh token issued with it, if any
	ExpiresAt      time.Time
	CreatedAt      time.Time
}

// RefreshToken is one link of a rotation family. ID is HashSecret of the token.
type RefreshToken struct {
	ID            string
	FamilyID      string
	ClientID      string
	Subject       string
	Audience      []string
	Scopes        []string
	AMR           []string
	ACR           string
	AuthTime      time.Time
	AuthRequestID string
	AccessTokenID string
	SessionID     string // the SID of the grant's session, for refreshed ID tokens
	CreatedAt     time.Time
	ExpiresAt     time.Time
	RotatedAt     *time.Time // set when exchanged for a successor
	RevokedAt     *time.Time
}

// SigningKey is a token-signing key. PrivateKey is opaque to the store
// (the op package encrypts it before storing).
type SigningKey struct {
	ID         string // the JWK kid
	Algorithm  string // RS256, ES256
	PrivateKey []byte
	PublicKey  []byte // PKIX DER
	CreatedAt  time.Time
	// ActiveFrom: published in the JWKS from CreatedAt, used for signing from
	// ActiveFrom, so relying parties have the key cached before they see it.
	ActiveFrom time.Time
	// RetireAt: no longer used for signing after this instant.
	RetireAt time.Time
	// ExpiresAt: dropped from the JWKS (and deleted) after this instant,
	// once no token it signed can still be valid.
	ExpiresAt time.Time
}

// LoginFlow is the server-side state of one pass through the hosted login
// pages (S1..S7), referenced by a random handle whose HashSecret is ID.
// Every transition is an UpdateLoginFlow with optimistic locking on Version.
type LoginFlow struct {
	ID            string
	AuthRequestID string // empty for flows not started by an RP (e.g. S8)
	UserID        string // set once the login ID is known to exist
	LoginID       string // as typed, kept to redisplay it (S3 「編集」)
	Purpose       string // what the flow is for, e.g. "login", "enrol"
	Step          string // the state machine's current state
	// PasswordVerifiedAt, OTPVerifiedAt and PasskeyVerifiedAt record the
	// factors proven within this flow.
	PasswordVerifiedAt *time.Time
	OTPVerifiedAt      *time.Time
	PasskeyVerifiedAt  *time.Time
	// OTPHash is HashSecret of the one-time password currently valid
	// (empty when none); OTPAttempts counts wrong tries against it.
	OTPHash      string
	OTPExpiresAt *time.Time
	OTPAttempts  int
	OTPSentAt    *time.Time
	// Data carries step-specific values (e.g. the authenticator attachment
	// of a passkey login) as JSON.
	Data      []byte
	Version   int
	CreatedAt time.Time
	ExpiresAt time.Time
}

// WebAuthnSession is the server-side half of a WebAuthn ceremony, keyed by its
// challenge. It is taken (read and deleted in one step) when the ceremony
// finishes, whatever the outcome.
type WebAuthnSession struct {
	Challenge string // base64url, as in the client data
	Ceremony  string // "registration", "login"
	UserID    string // empty for discoverable login
	FlowID    string // the LoginFlow (or Session) the ceremony belongs to
	Data      []byte // webauthn.SessionData as JSON
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CredentialOwner is a passkey read with its user and all of the user's
// passkeys (Credentials.CredentialOwner).
type CredentialOwner struct {
	Credential Credential
	User       User
	// Credentials are all of User's passkeys, Credential among them, oldest
	// first (as CredentialsByUser lists them).
	Credentials []Credential
}

// Credential is a registered passkey.
type Credential struct {
	ID              []byte // credential ID, unique across all users
	UserID          string
	PublicKey       []byte
	AttestationType string
	AAGUID          []byte
	SignCount       uint32
	Transports      []string
	UserPresent     bool
	UserVerified    bool
	BackupEligible  bool
	BackupState     bool
	CloneWarning    bool
	Attachment      string // "platform" or "cross-platform", as reported at registration
	Name            string
	CreatedAt       time.Time
	LastUsedAt      *time.Time
}

// CredentialUse is what a successful passkey login writes back.
type CredentialUse struct {
	SignCount    uint32
	BackupState  bool
	UserVerified bool
	CloneWarning bool
	UsedAt       time.Time
}

// AuditEvent is one security event. The store assigns Seq, Nonce and MAC
// (the keyed MAC of the content, see AuditMAC) when it appends the event,
// and PrevHash and Hash when the sealer links it into the chain (see
// AuditLink); until then they are empty. Rows written before the chain was
// keyed have no MAC and carry the old unkeyed hashes (LegacyAuditHash).
type AuditEvent struct {
	Seq       int64
	Time      time.Time
	Type      string // e.g. "login.success", "otp.sent", "passkey.deleted"
	Actor     string // "user:<id>", "staff:<name>", "system"
	UserID    string
	IP        string
	UserAgent string
	Detail    map[string]string
	Nonce     string
	MAC       string
	PrevHash  string
	Hash      string
}

// AuditSealOptions tells SealAudit what time it is and when to checkpoint.
type AuditSealOptions struct {
	Now time.Time
	// CheckpointEvery writes a checkpoint when the newest is at least this
	// old (or there is none); 0 writes one in any case.
	CheckpointEvery time.Duration
	// Wait queues behind a sealer running elsewhere instead of leaving the
	// work to it (for `idp audit verify`, which must see everything sealed).
	Wait bool
}

// Store is the whole persistence contract: every role below, plus Ping and
// Close. sqlstore implements it and the conformance suite runs on it; a
// consumer asks only for the roles (or the methods of a role) it uses, so
// its signature says what it can touch.
//
// Methods that look a row up return ErrNotFound for missing or expired rows.
// Times are stored with at least microsecond precision and returned in UTC.
type Store interface {
	Users
	Sessions
	AuthRequests
	Tokens
	SigningKeys
	LoginFlows
	RateLimits
	WebAuthnSessions
	Credentials
	KnownDevices
	EnrolmentLinks
	Audit
	Housekeeping
	BackchannelLogouts

	// Ping reports whether the database answers (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// Users are the customers' accounts.
type Users interface {
	CreateUser(ctx context.Context, u *User) error
	UserByID(ctx context.Context, id string) (*User, error)
	UserByLoginID(ctx context.Context, loginID string) (*User, error)
	UpdatePassword(ctx context.Context, userID, hash string, temporary bool) error
	// MaxBcryptCost is the highest cost of any stored bcrypt hash (imported
	// from the previous system), 0 when none is left: every password check
	// is padded to it so the stored scheme does not show in the timing.
	MaxBcryptCost(ctx context.Context) (int, error)
	SetUserLocked(ctx context.Context, userID string, locked bool) error
	// SetPasskeyOfferSkipped records that the user declined the passkey
	// offer at the given time (User.PasskeyOfferSkippedAt).
	SetPasskeyOfferSkipped(ctx context.Context, userID string, at time.Time) error
	// DeleteUser removes the user with their sessions, credentials, tokens
	// and the rate events keyed by their ID or login ID.
	DeleteUser(ctx context.Context, userID string) error
}

// Sessions are the IdP's SSO sessions.
//
// Every way a session ends (DeleteSession, EndUserAccess, DeleteUser,
// DeleteExpired) enqueues a BackchannelLogout for each client the session
// signed in to, in the transaction that deletes it, so no caller can end a
// session without telling the relying parties and a crash loses none.
type Sessions interface {
	// CreateSession is ErrConflict when EndUserAccess ended the user's
	// access after s.AuthTime: a proof from before cannot open a session.
	CreateSession(ctx context.Context, s *Session) error
	SessionByID(ctx context.Context, id string) (*Session, error)
	// SessionWithUser is SessionByID with the session's user and whether
	// the user has a passkey, in one query: everything an SSO answer
	// decides on. ErrNotFound also when the user is gone.
	SessionWithUser(ctx context.Context, id string) (*SessionUser, error)
	TouchSession(ctx context.Context, id string, lastSeen time.Time) error
	// RenewSession replaces the session oldID by next (a new cookie after a
	// new proof) as one session: next takes over oldID's SID and the
	// clients it signed in to (next.SID is set), and no logout is sent.
	// ErrNotFound when oldID is gone or expired: a session ended meanwhile
	// is not brought back.
	RenewSession(ctx context.Context, oldID string, next *Session) error
	DeleteSession(ctx context.Context, id string) error
	// SessionsByUser lists the user's sessions unexpired at now, the most
	// recently used first, with their Clients.
	SessionsByUser(ctx context.Context, userID string, now time.Time) ([]Session, error)
	// EndUserAccess signs the user out everywhere, in one transaction: it
	// deletes their SSO sessions except keepSessionID (none when empty),
	// deletes their access tokens and revokes their refresh tokens, for
	// every client, and ends the auth requests completed but not yet
	// exchanged; proofs older than now open nothing afterwards (see
	// CreateSession, CompleteAuthRequest). It is what a lost device, a lock
	// or a new password calls for.
	EndUserAccess(ctx context.Context, userID, keepSessionID string, now time.Time) (AccessEnded, error)
}

// AuthRequests are OIDC authorization requests and their codes.
type AuthRequests interface {
	CreateAuthRequest(ctx context.Context, a *AuthRequest) error
	AuthRequestByID(ctx context.Context, id string) (*AuthRequest, error)
	// CompleteAuthRequest records who authenticated, how and when, and the
	// code issued for it, once, and returns the completed request:
	// ErrConflict if the request was completed already (or has a code) or
	// EndUserAccess ended the user's access after c.AuthTime, ErrNotFound if
	// it is unknown or expired. Of concurrent calls exactly one succeeds.
	// c.SID, when set, is the SID of the SSO session that authenticated: the
	// request keeps it (the ID token's sid) and the session records the
	// request's client, so ending the session tells that client.
	// ErrNotFound too when that session has ended: a completion and the
	// end of its session never cross unnoticed.
	CompleteAuthRequest(ctx context.Context, id string, c Completion) (*AuthRequest, error)
	// CreateAuthRequestCompleted stores a new request already completed
	// by the SSO session c.SID (required) with c's code, as
	// CreateAuthRequest and then CompleteAuthRequest would, in one write:
	// the answer at /authorize from a session needs no pending row.
	// ErrNotFound, and nothing stored, when the session has ended.
	CreateAuthRequestCompleted(ctx context.Context, a *AuthRequest, c Completion) error
	// SaveAuthCode attaches a code's hash and the instant it stops being
	// exchangeable to a completed request, replacing any code not yet
	// exchanged.
	SaveAuthCode(ctx context.Context, id, codeHash string, expiresAt time.Time) error
	// AuthRequestByCode returns the request of a code and its user, even
	// when the code was exchanged (ConsumedAt set) or is past CodeExpiresAt,
	// so the caller can detect a replayed code; refusing an expired code is
	// the caller's job. ErrNotFound when the user no longer exists
	// (DeleteUser takes their requests and tokens with them).
	AuthRequestByCode(ctx context.Context, codeHash string) (*AuthRequest, *User, error)
	// ExchangeCode marks the code of request id exchanged at and stores the
	// tokens it buys (refresh may be nil), atomically: ErrConflict, and
	// nothing stored, if the code was exchanged already; ErrNotFound if the
	// request is gone or expired at at (EndUserAccess ends it so). Of
	// concurrent exchanges exactly one succeeds.
	ExchangeCode(ctx context.Context, id string, at time.Time, access *AccessToken, refresh *RefreshToken) error
}

// Completion is what completes an authorization request: the user, how and
// when they authenticated, the SSO session that did it, and the code the
// client will exchange.
type Completion struct {
	UserID   string
	AuthTime time.Time
	AMR      []string
	ACR      string
	// SID is the completing SSO session's SID; empty for none.
	SID string
	// CodeHash is HashSecret of the code issued with the completion, and
	// CodeExpiresAt the instant it stops being exchangeable; both empty
	// to issue the code later (SaveAuthCode).
	CodeHash      string
	CodeExpiresAt time.Time
}

// Tokens are the access and refresh tokens issued to clients.
type Tokens interface {
	CreateAccessToken(ctx context.Context, t *AccessToken) error
	AccessTokenByID(ctx context.Context, id string) (*AccessToken, error)
	DeleteAccessToken(ctx context.Context, id string) error
	CreateRefreshToken(ctx context.Context, rt *RefreshToken, at *AccessToken) error
	RefreshTokenByID(ctx context.Context, id string) (*RefreshToken, error)
	// RotateRefreshToken marks oldID rotated and stores its successor and
	// the new access token, atomically. If oldID was already rotated or
	// revoked, it revokes the whole family (and its access tokens) and
	// returns ErrRefreshTokenReused.
	RotateRefreshToken(ctx context.Context, oldID string, next *RefreshToken, at *AccessToken, now time.Time) error
	// RevokeRefreshToken revokes the family of the token and its access tokens.
	RevokeRefreshToken(ctx context.Context, id string, now time.Time) error
	// RevokeGrant deletes every access token and revokes every refresh token
	// issued from an authorization request (code replay).
	RevokeGrant(ctx context.Context, authRequestID string, now time.Time) error
}

// SigningKeys are the token-signing keys.
type SigningKeys interface {
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// RotateSigningKeys runs plan under a store-wide lock (so two replicas
	// never both add a key) with the current keys, then inserts and deletes
	// what plan returns, in the same transaction.
	RotateSigningKeys(ctx context.Context, plan func(current []SigningKey) (add []SigningKey, deleteIDs []string, err error)) error
}

// LoginFlows are the passes through the hosted login pages.
type LoginFlows interface {
	CreateLoginFlow(ctx context.Context, f *LoginFlow) error
	LoginFlowByID(ctx context.Context, id string) (*LoginFlow, error)
	// UpdateLoginFlow writes f if its Version is still the stored one, and
	// increments f.Version; ErrConflict otherwise.
	UpdateLoginFlow(ctx context.Context, f *LoginFlow) error
	// RekeyLoginFlow is UpdateLoginFlow that also moves the flow to newID
	// (f.ID becomes newID): the handle the browser held before is dead.
	RekeyLoginFlow(ctx context.Context, f *LoginFlow, newID string) error
	DeleteLoginFlow(ctx context.Context, id string) error
	// ReserveLoginFlow reserves slot as ReserveRateEvent does and then,
	// only when the slot was taken, reads the flow as LoginFlowByID does,
	// in one round trip: a rate-limited call that needs its flow. ok false
	// means the limit is reached: nothing written, no flow read. A taken
	// slot stays taken whatever the read finds (ErrNotFound for a flow
	// that is missing or expired).
	ReserveLoginFlow(ctx context.Context, id string, slot RateSlot) (f *LoginFlow, ok bool, err error)
}

// RateSlot is one reservation under a limit: an event of Kind for Key at
// At, taken only while fewer than Limit such events lie at or after Since
// (LoginFlows.ReserveLoginFlow).
type RateSlot struct {
	Kind, Key string
	At, Since time.Time
	Limit     int
}

// Check refuses a slot that names no kind, key or time, or no positive
// limit.
func (r RateSlot) Check() error {
	if r.Kind == "" || r.Key == "" || r.At.IsZero() || r.Limit <= 0 {
		return fmt.Errorf("rate slot: kind %q, key %q, time and a positive limit (%d) must all be set", r.Kind, r.Key, r.Limit)
	}
	return nil
}

// RateLimits are the events rate limits count, shared by every flow and
// replica.
type RateLimits interface {
	// RecordRateEvent notes one event of a kind ("otp_send",
	// "login_failure", …) for a key (a user ID, a login ID, an IP address);
	// CountRateEvents counts them at or after since. Rows older than
	// sqlstore.RateEventRetention are swept by DeleteExpired, so no limit
	// may look further back.
	RecordRateEvent(ctx context.Context, kind, key string, at time.Time) error
	CountRateEvents(ctx context.Context, kind, key string, since time.Time) (int, error)
	// ReserveRateEvent records one event of kind for key at at, but only
	// while fewer than limit such events lie at or after since; the count
	// and the insert are one step for every replica, so N concurrent
	// callers never take more than limit slots (check-then-act would). ok
	// false means the limit is reached and nothing was written. A limit is
	// spent before the guarded work runs; ReleaseRateEvent with the
	// returned id gives the slot back when the attempt must not count
	// after all (a right password).
	ReserveRateEvent(ctx context.Context, kind, key string, at, since time.Time, limit int) (id string, ok bool, err error)
	ReleaseRateEvent(ctx context.Context, kind, key, id string) error
}

// WebAuthnSessions are the server-side halves of WebAuthn ceremonies.
type WebAuthnSessions interface {
	SaveWebAuthnSession(ctx context.Context, s *WebAuthnSession) error
	// TakeWebAuthnSession returns and deletes the session in one step;
	// ErrNotFound if missing or expired at now.
	TakeWebAuthnSession(ctx context.Context, challenge string, now time.Time) (*WebAuthnSession, error)
}

// Credentials are the registered passkeys.
type Credentials interface {
	// CreateCredential stores a passkey; ErrAlreadyExists if the credential
	// ID is registered to anyone. With onlyIfFirst it fails with ErrConflict
	// when the user already has a passkey (rule 1 in docs/rules.md, race-free).
	CreateCredential(ctx context.Context, c *Credential, onlyIfFirst bool) error
	CredentialByID(ctx context.Context, id []byte) (*Credential, error)
	// CredentialOwner is CredentialByID with the credential's user and all
	// of that user's passkeys, in one query: what a passkey sign-in checks
	// and tells the device. ErrNotFound when the credential is unknown.
	CredentialOwner(ctx context.Context, id []byte) (*CredentialOwner, error)
	CredentialsByUser(ctx context.Context, userID string) ([]Credential, error)
	CountCredentials(ctx context.Context, userID string) (int, error)
	UpdateCredentialUse(ctx context.Context, id []byte, use CredentialUse) error
	RenameCredential(ctx context.Context, userID string, id []byte, name string) error
	// DeleteCredential removes one passkey of the user; ErrNotFound if the
	// user does not own it.
	DeleteCredential(ctx context.Context, userID string, id []byte) error
	DeleteUserCredentials(ctx context.Context, userID string) (int, error)
}

// KnownDevices are the browsers each customer signed in on, by the hash of
// a device cookie, for the "new sign-in" mail.
type KnownDevices interface {
	// RememberDevice records that userID signed in on the browser whose
	// device cookie hashes to deviceHash, at at, keeping only the keep most
	// recently seen browsers of the user. Of concurrent calls that first
	// name the browser exactly one answers DeviceNew or DeviceFirst; calls
	// for one user are serialised, so of two new browsers at once at most
	// one is the user's first.
	RememberDevice(ctx context.Context, userID, deviceHash string, at time.Time, keep int) (DeviceSighting, error)
}

// DeviceSighting is what RememberDevice found.
type DeviceSighting int

const (
	// DeviceKnown: the user signed in on this browser before.
	DeviceKnown DeviceSighting = iota + 1
	// DeviceNew: a browser new to a user who has signed in elsewhere.
	DeviceNew
	// DeviceFirst: the first browser remembered for the user at all (a
	// first sign-in, or the first since devices are remembered).
	DeviceFirst
)

func (d DeviceSighting) String() string {
	switch d {
	case DeviceKnown:
		return "known"
	case DeviceNew:
		return "new"
	case DeviceFirst:
		return "first"
	}
	return fmt.Sprintf("DeviceSighting(%d)", int(d))
}

// EnrolmentLinks are the staff-issued enrolment links.
type EnrolmentLinks interface {
	// CreateEnrolmentLink stores l and supersedes every earlier link of
	// its user, in one transaction; ErrConflict when another link for the
	// user was created at the same moment.
	CreateEnrolmentLink(ctx context.Context, l *EnrolmentLink) error
	// EnrolmentLinkByID returns the link whatever its state (used,
	// superseded, expired), so the page can say which; ErrNotFound when
	// unknown or swept.
	EnrolmentLinkByID(ctx context.Context, id string) (*EnrolmentLink, error)
	// UseEnrolmentLink marks the link used at now if it is live (unused,
	// not superseded, unexpired): of concurrent calls exactly one
	// succeeds; the others get ErrConflict, an unknown link ErrNotFound.
	UseEnrolmentLink(ctx context.Context, id string, now time.Time) error
}

// Audit is the security audit trail (a keyed chain, see audit.go).
type Audit interface {
	// AppendAudit stores e with a MAC and sets e.Seq, e.Nonce, e.MAC (and
	// e.Time when zero). It takes no store-wide lock: logins of every
	// replica append side by side; SealAudit chains the rows later.
	AppendAudit(ctx context.Context, e *AuditEvent) error
	// ListAudit returns events in Seq order, starting after afterSeq.
	ListAudit(ctx context.Context, afterSeq int64, limit int) ([]AuditEvent, error)
	// SealAudit links the appended events into the chain in Seq order and
	// writes a checkpoint when one is due; it returns the checkpoint, or
	// nil when none was due or another replica was sealing.
	SealAudit(ctx context.Context, opts AuditSealOptions) (*AuditCheckpoint, error)
	// ListAuditCheckpoints returns every checkpoint, oldest first.
	ListAuditCheckpoints(ctx context.Context) ([]AuditCheckpoint, error)
}

// BackchannelLogouts is the delivery queue of logout tokens (written by the
// Sessions methods that end sessions), shared by every replica.
type BackchannelLogouts interface {
	// ClaimBackchannelLogouts returns up to limit logouts due at now and
	// makes them due again only at now+lease, with Attempts counted up:
	// no other replica gets them meanwhile, and one that crashes
	// mid-delivery loses nothing. Concurrent claims never return the same
	// row.
	ClaimBackchannelLogouts(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]BackchannelLogout, error)
	// RetryBackchannelLogout makes a claimed logout due at at, noting why
	// the attempt failed; ErrNotFound if it is gone.
	RetryBackchannelLogout(ctx context.Context, id string, at time.Time, lastError string) error
	// DeleteBackchannelLogout removes a delivered or abandoned logout
	// (idempotent).
	DeleteBackchannelLogout(ctx context.Context, id string) error
}

// Housekeeping is what the periodic sweeper needs.
type Housekeeping interface {
	// DeleteExpired removes every expired auth request, session, login flow,
	// WebAuthn session, token, signing key, old rate event and long-expired
	// enrolment link; an expired session ends as any other (its logouts are
	// enqueued).
	DeleteExpired(ctx context.Context, now time.Time) (int64, error)
}
