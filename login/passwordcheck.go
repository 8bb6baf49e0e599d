package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
)

// A password check is what an online guesser buys with each request, so
// it is ordered so that no request gets a verdict without paying for it:
//
//  1. a hashing slot is taken from the verifier's limiter (bounded
//     memory); a full queue is a fast 429 that touches nothing else, so a
//     spray beyond capacity costs no database writes either;
//  2. a slot is reserved against the per-login-ID and per-address limits
//     (ReserveRateEvent, atomic across replicas) before the hash, so N
//     concurrent guesses verify at most the limit;
//  3. a right password gives its reservations back, a wrong one keeps
//     them as its failure records, and the failure is audited.
//
// The handlers run all of it, and what follows, on a context the client
// cannot cancel (detach): a client that hangs up after sending a password
// must neither skip the count and the audit row nor learn the verdict
// from a different error.

// maxLoginIDLength bounds what is looked up and used as a throttle key;
// longer (or unstorable) input is treated like an unknown ID.
const maxLoginIDLength = 128

var (
	// errTooManyAttempts: password guessing for this login ID or from this
	// address is paused (catalogue key err.too_many_attempts).
	errTooManyAttempts = errors.New("too many failed password attempts")
	// errHashBusy: every hashing slot is taken (err.busy).
	errHashBusy = errors.New("password hashing at capacity")
)

const rateLoginFailure = "login_failure"

// detachTimeout bounds a password request that no client can cancel.
const detachTimeout = 30 * time.Second

// detach returns r with a context that ignores the client hanging up but
// keeps its values (request-scoped logging, language) and a deadline.
func detach(r *http.Request) (*http.Request, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), detachTimeout)
	return r.WithContext(ctx), cancel
}

// attemptSlots are the rate-limit slots one password check holds.
type attemptSlots struct {
	keys, ids []string
}

// reserveAttempt takes a slot under each password limit; nil slots mean a
// limit is reached (nothing is held then).
func (h *Handler) reserveAttempt(r *http.Request, loginID string) (*attemptSlots, error) {
	ctx := r.Context()
	t := h.cfg.PasswordThrottle
	now := h.now()
	held := &attemptSlots{}
	for _, k := range []struct {
		key   string
		limit int
	}{{throttleKeyLoginID(loginID), t.MaxPerLoginID}, {"ip:" + h.clientIP(r), t.MaxPerAddress}} {
		id, ok, err := h.store.ReserveRateEvent(ctx, rateLoginFailure, k.key, now, now.Add(-t.Window), k.limit)
		if err != nil {
			h.releaseAttempt(r, held)
			return nil, fmt.Errorf("reserving a password attempt: %w", err)
		}
		if !ok {
			h.releaseAttempt(r, held)
			h.log.WarnContext(ctx, "password attempts throttled", "key", k.key, "limit", k.limit, "window", t.Window)
			h.audit(r, audit.LoginThrottled, "", audit.Detail{audit.KeyThrottleKey: k.key})
			return nil, nil
		}
		held.keys, held.ids = append(held.keys, k.key), append(held.ids, id)
	}
	return held, nil
}

// releaseAttempt gives the slots back: the attempt does not count.
func (h *Handler) releaseAttempt(r *http.Request, s *attemptSlots) {
	for i, key := range s.keys {
		if err := h.store.ReleaseRateEvent(r.Context(), rateLoginFailure, key, s.ids[i]); err != nil {
			h.log.ErrorContext(r.Context(), "releasing a password attempt", "key", key, "err", err)
		}
	}
}

// checkPassword looks the login ID up and verifies the password, spending
// the same work whether or not the ID exists and however its password is
// stored (rule 7, docs/rules.md). It returns the user only when the password is
// right; errTooManyAttempts and errHashBusy say why nothing was checked.
func (h *Handler) checkPassword(r *http.Request, loginID, pw string) (*storage.User, error) {
	ctx := r.Context()
	slot, err := h.verifier.Acquire(ctx)
	if err != nil {
		h.log.WarnContext(ctx, "password check refused: hashing at capacity",
			"slots", h.verifier.Limiter().Slots(), "waiting", h.verifier.Limiter().Waiting())
		return nil, errHashBusy
	}
	defer slot.Release()
	reserved, err := h.reserveAttempt(r, loginID)
	if err != nil {
		return nil, err
	}
	if reserved == nil {
		return nil, errTooManyAttempts
	}
	var user *storage.User
	if loginID != "" && storableText(loginID, maxLoginIDLength) {
		u, err := h.store.UserByLoginID(ctx, loginID)
		switch {
		case err == nil:
			user = u
		case !errors.Is(err, storage.ErrNotFound):
			h.releaseAttempt(r, reserved)
			return nil, err
		}
	}
	phc := ""
	if user != nil {
		phc = user.PasswordHash
	}
	h.refreshBcryptCost(ctx)
	ok, err := h.verifier.Verify(slot, phc, pw)
	if err != nil {
		// A broken stored hash must not lock the page up: log, deny.
		h.log.ErrorContext(ctx, "verifying password", "user", userIDOf(user), "err", err)
		ok = false
	}
	if !ok || user == nil {
		h.audit(r, audit.LoginFailure, userIDOf(user), audit.Detail{audit.KeyMethod: methodPassword, audit.KeyReason: "credentials"})
		h.log.InfoContext(ctx, "wrong login ID or password", "path", r.URL.Path)
		return nil, nil
	}
	h.releaseAttempt(r, reserved)
	h.upgradeHash(r, slot, user, pw)
	return user, nil
}

// upgradeHash replaces an imported bcrypt hash by argon2id once the
// password is known to be right, so the bcrypt padding of every check
// (password.Verifier) ends when the last imported user has signed in.
func (h *Handler) upgradeHash(r *http.Request, slot *password.Slot, user *storage.User, pw string) {
	if !password.NeedsRehash(user.PasswordHash) {
		return
	}
	hash, err := h.verifier.Hash(slot, pw)
	if err != nil {
		h.log.ErrorContext(r.Context(), "rehashing imported password", "user", user.ID, "err", err)
		return
	}
	if err := h.store.UpdatePassword(r.Context(), user.ID, hash, user.PasswordTemporary); err != nil {
		h.log.ErrorContext(r.Context(), "storing rehashed password", "user", user.ID, "err", err)
		return
	}
	user.PasswordHash = hash
	h.audit(r, audit.PasswordRehashed, user.ID, audit.Detail{audit.KeyFrom: "bcrypt", audit.KeyTo: "argon2id"})
}

// bcryptCostRefresh is how often a replica re-reads the highest stored
// bcrypt cost; between two reads every check is padded to the last one.
const bcryptCostRefresh = time.Minute

type bcryptCostCache struct{ next atomic.Int64 }

// refreshBcryptCost keeps the verifier's bcrypt padding at the highest
// cost still stored. One caller per interval asks the store; on failure
// the previous value stays (padding too much is safe).
func (h *Handler) refreshBcryptCost(ctx context.Context) {
	now := h.now()
	next := h.bcryptCost.next.Load()
	if now.UnixNano() < next || !h.bcryptCost.next.CompareAndSwap(next, now.Add(bcryptCostRefresh).UnixNano()) {
		return
	}
	cost, err := h.store.MaxBcryptCost(ctx)
	if err != nil {
		h.log.ErrorContext(ctx, "reading stored bcrypt cost", "err", err)
		return
	}
	h.verifier.SetBcryptCost(cost)
}

// throttleKeyLoginID keys failures by login ID. Input that is no storable
// login ID is keyed by its hash, so it is still counted, never refused by
// the store.
func throttleKeyLoginID(loginID string) string {
	if !storableText(loginID, maxLoginIDLength) {
		return "login-hash:" + storage.HashSecret(loginID)
	}
	return "login:" + loginID
}

// retryAfter sets Retry-After for a 429 answer.
func retryAfter(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second))))
}
