package op

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	zop "github.com/zitadel/oidc/v3/pkg/op"

	"github.com/comstockloan/idp/storage"
)

// keyCacheTTL bounds how stale a replica's view of the key table may be.
// Keys are published KeyPublishDelay before they sign, so a few seconds of
// staleness never makes a replica miss a key it must verify or use.
const keyCacheTTL = 5 * time.Second

// keyManager owns the signing keys in the database.
type keyManager struct {
	store          storage.SigningKeys
	log            *slog.Logger
	sealKey        []byte
	alg            string
	rotationPeriod time.Duration
	publishDelay   time.Duration
	// tokenLifetime is the longest a signed token can stay in use (as a
	// token or as an id_token_hint), so a retired key is kept that long.
	tokenLifetime time.Duration
	now           func() time.Time

	mu        sync.Mutex
	cached    []storage.SigningKey
	cachedAt  time.Time
	decrypted map[string]crypto.Signer // private keys by kid; immutable once stored
}

func newKeyManager(cfg Config, store storage.SigningKeys, log *slog.Logger, now func() time.Time) *keyManager {
	// A separate key for sealing private keys, derived from CryptoKey, so
	// the codes' and tokens' encryption key is never used for two purposes.
	mac := hmac.New(sha256.New, cfg.CryptoKey[:])
	mac.Write([]byte("idp/op signing-key sealing v1"))
	// A relying party that logs a user out sends the ID token it got at the
	// last login or refresh as id_token_hint, long after that token expired;
	// zitadel still verifies its signature, so the public key stays
	// published as long as a refresh token may keep such a session alive.
	longest := max(cfg.IDTokenLifetime, cfg.AccessTokenLifetime, cfg.RefreshTokenLifetime)
	for _, c := range cfg.Clients {
		longest = max(longest, c.IDTokenLifetime, c.AccessTokenLifetime, c.RefreshTokenLifetime)
	}
	return &keyManager{
		store: store, log: log, sealKey: mac.Sum(nil), alg: cfg.SigningAlgorithm,
		rotationPeriod: cfg.KeyRotationPeriod, publishDelay: cfg.KeyPublishDelay,
		tokenLifetime: longest, now: now, decrypted: map[string]crypto.Signer{},
	}
}

// EnsureKeys makes sure a key can sign right now, creating one that is
// active at once when none is (first start, or a long outage).
func (p *Provider) EnsureKeys(ctx context.Context) error {
	return p.keys.rotate(ctx, false, true)
}

// RotateKeys adds the next key once the current one retires within
// KeyPublishDelay (at once when force), and deletes expired keys. It is safe
// to run on every replica: the store serialises the plans.
func (p *Provider) RotateKeys(ctx context.Context, force bool) error {
	return p.keys.rotate(ctx, force, false)
}

// RunKeyRotation calls RotateKeys every interval until ctx ends.
func (p *Provider) RunKeyRotation(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := p.RotateKeys(ctx, false); err != nil && ctx.Err() == nil {
			p.log.ErrorContext(ctx, "key rotation failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func signingCandidate(keys []storage.SigningKey, now time.Time) *storage.SigningKey {
	var best *storage.SigningKey
	for i := range keys {
		k := &keys[i]
		if k.ActiveFrom.After(now) || !now.Before(k.RetireAt) {
			continue
		}
		if best == nil || k.ActiveFrom.After(best.ActiveFrom) {
			best = k
		}
	}
	return best
}

func (m *keyManager) rotate(ctx context.Context, force, ensureOnly bool) error {
	var added []string
	err := m.store.RotateSigningKeys(ctx, func(current []storage.SigningKey) ([]storage.SigningKey, []string, error) {
		now := m.now()
		var deleteIDs []string
		for _, k := range current {
			if !now.Before(k.ExpiresAt) {
				deleteIDs = append(deleteIDs, k.ID)
			}
		}
		active := signingCandidate(current, now)
		if active == nil {
			k, err := m.generate(now, now)
			if err != nil {
				return nil, nil, err
			}
			added = append(added, k.ID)
			return []storage.SigningKey{k}, deleteIDs, nil
		}
		if ensureOnly {
			return nil, deleteIDs, nil
		}
		for _, k := range current {
			if k.ActiveFrom.After(now) {
				return nil, deleteIDs, nil // the successor is already published
			}
		}
		// A changed signing_algorithm counts as due: otherwise the old
		// algorithm would sign for the rest of a rotation period.
		if !force && active.RetireAt.Sub(now) > m.publishDelay && active.Algorithm == m.alg {
			return nil, deleteIDs, nil
		}
		// Start signing when the current key retires, but never before the
		// new key has been published for KeyPublishDelay (unless that would
		// leave a gap with no key to sign).
		activeFrom := now.Add(m.publishDelay)
		if active.RetireAt.Before(activeFrom) {
			activeFrom = active.RetireAt
		}
		k, err := m.generate(now, activeFrom)
		if err != nil {
			return nil, nil, err
		}
		added = append(added, k.ID)
		return []storage.SigningKey{k}, deleteIDs, nil
	})
	if err != nil {
		return fmt.Errorf("rotate signing keys: %w", err)
	}
	for _, id := range added {
		m.log.InfoContext(ctx, "signing key created", "kid", id, "alg", m.alg)
	}
	m.invalidate()
	return nil
}

func (m *keyManager) generate(now, activeFrom time.Time) (storage.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch m.alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("generate %s key: %w", m.alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("marshal private key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("marshal public key: %w", err)
	}
	id := uuid.NewString()
	sealed, err := m.seal(id, der)
	if err != nil {
		return storage.SigningKey{}, err
	}
	retire := activeFrom.Add(m.rotationPeriod)
	return storage.SigningKey{
		ID: id, Algorithm: m.alg, PrivateKey: sealed, PublicKey: pub,
		CreatedAt: now, ActiveFrom: activeFrom, RetireAt: retire, ExpiresAt: retire.Add(m.tokenLifetime),
	}, nil
}

// seal encrypts a private key with AES-GCM; the kid is the associated data
// so a sealed key cannot be moved to another row.
func (m *keyManager) seal(kid string, plain []byte) ([]byte, error) {
	gcm, err := m.gcm()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return gcm.Seal(nonce, nonce, plain, []byte(kid)), nil
}

func (m *keyManager) open(kid string, sealed []byte) ([]byte, error) {
	gcm, err := m.gcm()
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, errors.New("sealed key too short")
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("decrypt private key %s (wrong crypto key?): %w", kid, err)
	}
	return plain, nil
}

func (m *keyManager) gcm() (cipher.AEAD, error) {
	block, err := aes.NewCipher(m.sealKey)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return gcm, nil
}

func (m *keyManager) invalidate() {
	m.mu.Lock()
	m.cached = nil
	m.mu.Unlock()
}

func (m *keyManager) list(ctx context.Context) ([]storage.SigningKey, error) {
	m.mu.Lock()
	if m.cached != nil && m.now().Sub(m.cachedAt) < keyCacheTTL && m.now().After(m.cachedAt) {
		keys := m.cached
		m.mu.Unlock()
		return keys, nil
	}
	m.mu.Unlock()
	keys, err := m.store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	m.mu.Lock()
	m.cached, m.cachedAt = keys, m.now()
	m.mu.Unlock()
	return keys, nil
}

func (m *keyManager) signingKey(ctx context.Context) (zop.SigningKey, error) {
	keys, err := m.list(ctx)
	if err != nil {
		return nil, err
	}
	k := signingCandidate(keys, m.now())
	if k == nil {
		return nil, errors.New("no active signing key (EnsureKeys not run?)")
	}
	priv, err := m.privateKey(k)
	if err != nil {
		return nil, err
	}
	return signingKey{id: k.ID, alg: jose.SignatureAlgorithm(k.Algorithm), key: priv}, nil
}

func (m *keyManager) privateKey(k *storage.SigningKey) (crypto.Signer, error) {
	m.mu.Lock()
	priv, ok := m.decrypted[k.ID]
	m.mu.Unlock()
	if ok {
		return priv, nil
	}
	der, err := m.open(k.ID, k.PrivateKey)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse private key %s: %w", k.ID, err)
	}
	priv, ok = parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key %s is not a signer", k.ID)
	}
	m.mu.Lock()
	m.decrypted[k.ID] = priv
	m.mu.Unlock()
	return priv, nil
}

// algorithms lists the configured algorithm and that of every published
// key, for discovery's id_token_signing_alg_values_supported: after a
// change of signing_algorithm the old one still signs until its successor
// takes over, and relying parties that check the list must accept it.
func (m *keyManager) algorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	keys, err := m.list(ctx)
	if err != nil {
		return nil, err
	}
	algs := []jose.SignatureAlgorithm{jose.SignatureAlgorithm(m.alg)}
	now := m.now()
	for _, k := range keys {
		if a := jose.SignatureAlgorithm(k.Algorithm); now.Before(k.ExpiresAt) && !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	return algs, nil
}

func (m *keyManager) keySet(ctx context.Context) ([]zop.Key, error) {
	keys, err := m.list(ctx)
	if err != nil {
		return nil, err
	}
	now := m.now()
	var out []zop.Key
	for _, k := range keys {
		if !now.Before(k.ExpiresAt) {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("parse public key %s: %w", k.ID, err)
		}
		out = append(out, publicKey{id: k.ID, alg: jose.SignatureAlgorithm(k.Algorithm), key: pub})
	}
	return out, nil
}

type signingKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct {
	id  string
	alg jose.SignatureAlgorithm
	key any
}

func (k publicKey) ID() string                         { return k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return k.alg }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.key }
