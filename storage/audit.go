package storage

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The audit trail is a keyed chain: every row carries a MAC of its content
// (AuditMAC) when it is appended, and a sealer later links the rows in Seq
// order (AuditLink) and writes MACed checkpoints (AuditCheckpointMAC). The
// key is derived from a secret that is not in the database (AuditKey), so
// someone with write access to the database alone can delete or edit rows
// but cannot make the result verify. AuditVerifier checks a trail.

// auditKeyInfo separates the audit key from every other key derived from
// the same secret; changing it invalidates every MAC ever written.
const auditKeyInfo = "comstockloan idp: audit trail MAC key v1"

// AuditKey derives the audit MAC key from the deployment secret (the
// config's crypto_key) with HKDF-SHA256. The result is never stored.
func AuditKey(secret []byte) ([]byte, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("audit key: secret has %d bytes, want at least 32", len(secret))
	}
	key, err := hkdf.Key(sha256.New, secret, nil, auditKeyInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	return key, nil
}

// auditContent fixes the field order of the MACed form; encoding/json
// writes map keys sorted, which makes Detail canonical too.
type auditContent struct {
	Nonce     string            `json:"nonce"`
	Time      string            `json:"time"`
	Type      string            `json:"type"`
	Actor     string            `json:"actor"`
	UserID    string            `json:"user_id"`
	IP        string            `json:"ip"`
	UserAgent string            `json:"user_agent"`
	Detail    map[string]string `json:"detail"`
}

// AuditMAC returns the hex HMAC-SHA256 under key of e's content and nonce.
// Seq is not covered: the database assigns it after the MAC is computed;
// AuditLink binds the row to its Seq when it is sealed, and the nonce keeps
// two rows of equal content apart. e.MAC, e.PrevHash and e.Hash are not
// read. Time is covered at microsecond precision in UTC, what every backend
// stores.
func AuditMAC(key []byte, e AuditEvent) string {
	body := canonicalJSON(auditContent{
		Nonce:     e.Nonce,
		Time:      auditTime(e.Time),
		Type:      e.Type,
		Actor:     e.Actor,
		UserID:    e.UserID,
		IP:        e.IP,
		UserAgent: e.UserAgent,
		Detail:    nonNil(e.Detail),
	})
	return auditHMAC(key, "audit row v1", string(body))
}

// AuditLink returns the chain hash of the sealed row at seq with row MAC
// mac, following the row whose chain hash is prevHash ("" before the first
// row). A row deleted after sealing breaks the link of the row after it; a
// Seq that was never committed (a rolled-back insert) is simply not in the
// chain, so a gap present at sealing verifies.
func AuditLink(key []byte, prevHash string, seq int64, mac string) string {
	return auditHMAC(key, "audit link v1", prevHash, strconv.FormatInt(seq, 10), mac)
}

// AuditCheckpoint is a MACed statement, written by the sealer, that the
// chain reached the row Seq with chain hash Hash at Time. Checkpoints are
// chained among themselves (each MAC covers the previous one's), so one
// removed from the middle shows, and the newest one's age shows a cut tail.
type AuditCheckpoint struct {
	ID   int64
	Time time.Time
	Seq  int64  // the last sealed row, 0 for an empty trail
	Hash string // its chain hash
	MAC  string
}

// AuditCheckpointMAC returns c's MAC following the checkpoint whose MAC is
// prevMAC ("" for the first). c.ID and c.MAC are not read.
func AuditCheckpointMAC(key []byte, prevMAC string, c AuditCheckpoint) string {
	return auditHMAC(key, "audit checkpoint v1", prevMAC, auditTime(c.Time), strconv.FormatInt(c.Seq, 10), c.Hash)
}

// AuditAnchor names a point of the chain: the sealed row Seq and its chain
// hash, as `idp audit verify` prints it for the operator to note elsewhere.
type AuditAnchor struct {
	Seq  int64
	Hash string
}

// legacyContent is the hashed form of rows written before the chain was
// keyed: Seq was part of it because the store assigned it first.
type legacyContent struct {
	Seq       int64             `json:"seq"`
	Time      string            `json:"time"`
	Type      string            `json:"type"`
	Actor     string            `json:"actor"`
	UserID    string            `json:"user_id"`
	IP        string            `json:"ip"`
	UserAgent string            `json:"user_agent"`
	Detail    map[string]string `json:"detail"`
}

// LegacyAuditHash is the unkeyed rule of rows written before the chain was
// keyed (migration 0006): hex SHA-256 over prevHash and e's content, Seq
// included. Anyone can compute it, so AuditVerifier accepts it only for a
// prefix of the trail that the keyed chain and checkpoints pin down.
func LegacyAuditHash(prevHash string, e AuditEvent) string {
	body := canonicalJSON(legacyContent{
		Seq:       e.Seq,
		Time:      auditTime(e.Time),
		Type:      e.Type,
		Actor:     e.Actor,
		UserID:    e.UserID,
		IP:        e.IP,
		UserAgent: e.UserAgent,
		Detail:    nonNil(e.Detail),
	})
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write([]byte{'\n'})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func auditTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

// nonNil makes nil and empty Detail MAC alike: a backend may return either.
func nonNil(d map[string]string) map[string]string {
	if d == nil {
		return map[string]string{}
	}
	return d
}

func canonicalJSON(v any) []byte {
	body, err := json.Marshal(v)
	if err != nil {
		// Marshalling strings and a string map cannot fail.
		panic("storage: audit canonical encoding: " + err.Error())
	}
	return body
}

// auditHMAC MACs the parts joined by newlines under a domain label; no part
// contains a newline (hex, decimal, RFC 3339 or JSON, which escapes it), so
// the joining is unambiguous.
func auditHMAC(key []byte, label string, parts ...string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	for _, p := range parts {
		m.Write([]byte{'\n'})
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// AuditBreak is the first place a trail fails to verify.
type AuditBreak struct {
	Seq    int64 // the row, or the row a checkpoint or expectation names
	Reason string
}

func (b *AuditBreak) Error() string {
	return fmt.Sprintf("audit chain broken at event seq %d: %s", b.Seq, b.Reason)
}

// SeqRange is an inclusive range of Seq values.
type SeqRange struct{ From, To int64 }

// AuditReport is what a verified trail looks like.
type AuditReport struct {
	Events      int        // rows read
	Legacy      int        // rows of the unkeyed chain before migration 0006
	Unsealed    int        // rows appended but not yet linked (the newest, or behind a gap still in its grace time)
	SealGaps    []SeqRange // Seq values missing when the chain was sealed: rolled-back inserts, or rows deleted before sealing
	Orphans     []int64    // rows with a valid MAC committed after the chain had been sealed past their Seq
	Last        AuditAnchor
	Checkpoints int
}

// AuditVerifier checks a trail fed to it in Seq order, in pages, against
// the key, the checkpoints and any anchors noted elsewhere.
type AuditVerifier struct {
	key    []byte
	expect map[int64]expectation
	report AuditReport
	// prev is the last linked row; keyed is set once a keyed row was seen;
	// pendingUnsealed are unsealed keyed rows not yet known to be orphans.
	prev            AuditAnchor
	keyed           bool
	sealedKeyed     bool
	pendingUnsealed []int64
	lastSeq         int64
	broken          *AuditBreak
}

type expectation struct {
	hash string
	what string
}

// NewAuditVerifier checks the checkpoints (in ID order) and returns a
// verifier that will also hold the rows to them and to expect.
func NewAuditVerifier(key []byte, checkpoints []AuditCheckpoint, expect ...AuditAnchor) (*AuditVerifier, error) {
	v := &AuditVerifier{key: key, expect: map[int64]expectation{}}
	prevMAC := ""
	var prevSeq int64
	for i, c := range checkpoints {
		if !hmac.Equal([]byte(c.MAC), []byte(AuditCheckpointMAC(key, prevMAC, c))) {
			return nil, &AuditBreak{Seq: c.Seq, Reason: fmt.Sprintf(
				"checkpoint %d (%s) fails its MAC: it was forged or altered, or one before it was removed",
				c.ID, c.Time.UTC().Format(time.RFC3339))}
		}
		if c.Seq < prevSeq {
			return nil, &AuditBreak{Seq: c.Seq, Reason: fmt.Sprintf("checkpoint %d goes back from seq %d", c.ID, prevSeq)}
		}
		if c.Seq > 0 {
			v.expect[c.Seq] = expectation{hash: c.Hash, what: fmt.Sprintf("checkpoint %d (%s)", c.ID, c.Time.UTC().Format(time.RFC3339))}
		}
		prevMAC, prevSeq = c.MAC, c.Seq
		v.report.Checkpoints = i + 1
	}
	for _, a := range expect {
		if old, ok := v.expect[a.Seq]; ok && old.hash != a.Hash {
			return nil, &AuditBreak{Seq: a.Seq, Reason: fmt.Sprintf("the expected hash %s differs from %s's %s", a.Hash, old.what, old.hash)}
		}
		v.expect[a.Seq] = expectation{hash: a.Hash, what: "the expected last seq"}
	}
	return v, nil
}

// Add checks the next events (in Seq order, continuing the previous call)
// and returns the first break.
func (v *AuditVerifier) Add(events []AuditEvent) error {
	if v.broken != nil {
		return v.broken
	}
	for _, e := range events {
		if err := v.add(e); err != nil {
			v.broken = err
			return err
		}
	}
	return nil
}

func (v *AuditVerifier) add(e AuditEvent) *AuditBreak {
	if e.Seq <= v.lastSeq {
		return &AuditBreak{Seq: e.Seq, Reason: "rows out of order"}
	}
	v.lastSeq = e.Seq
	v.report.Events++
	if e.MAC == "" {
		// A legacy row: only before the first keyed row, in the old
		// contiguous chain.
		if v.keyed {
			return &AuditBreak{Seq: e.Seq, Reason: "an unkeyed row after keyed ones: rows were rewritten without the key"}
		}
		if e.Seq != v.prev.Seq+1 {
			return &AuditBreak{Seq: e.Seq, Reason: "unkeyed rows before it were removed"}
		}
		if e.PrevHash != v.prev.Hash || LegacyAuditHash(v.prev.Hash, e) != e.Hash {
			return &AuditBreak{Seq: e.Seq, Reason: "this unkeyed row or an earlier one was altered or removed"}
		}
		v.report.Legacy++
		return v.linked(e)
	}
	v.keyed = true
	if !hmac.Equal([]byte(e.MAC), []byte(AuditMAC(v.key, e))) {
		return &AuditBreak{Seq: e.Seq, Reason: "its content fails its MAC: the row was altered or forged (or the key is not this deployment's)"}
	}
	if e.Hash == "" {
		v.pendingUnsealed = append(v.pendingUnsealed, e.Seq)
		return nil
	}
	if e.PrevHash != v.prev.Hash || !hmac.Equal([]byte(e.Hash), []byte(AuditLink(v.key, v.prev.Hash, e.Seq, e.MAC))) {
		reason := "its link fails: rows between seq %d and it were removed or unsealed after sealing"
		if e.PrevHash == v.prev.Hash {
			reason = "its link fails: the row was moved or its chain hash altered (after seq %d)"
		}
		return &AuditBreak{Seq: e.Seq, Reason: fmt.Sprintf(reason, v.prev.Seq)}
	}
	// A sealed row after unsealed ones: those were committed after the
	// sealer had given up waiting for them (their MAC verified above).
	v.report.Orphans = append(v.report.Orphans, v.pendingUnsealed...)
	v.pendingUnsealed = v.pendingUnsealed[:0]
	if e.Seq > v.prev.Seq+1 {
		v.report.SealGaps = append(v.report.SealGaps, SeqRange{v.prev.Seq + 1, e.Seq - 1})
	}
	v.sealedKeyed = true
	return v.linked(e)
}

func (v *AuditVerifier) linked(e AuditEvent) *AuditBreak {
	if want, ok := v.expect[e.Seq]; ok {
		if want.hash != e.Hash {
			return &AuditBreak{Seq: e.Seq, Reason: fmt.Sprintf("%s recorded hash %s, the row has %s", want.what, want.hash, e.Hash)}
		}
		delete(v.expect, e.Seq)
	}
	v.prev = AuditAnchor{Seq: e.Seq, Hash: e.Hash}
	return nil
}

// Finish reports the trail once every event was added, or the break: an
// orphan removed from the report is fine, but a checkpoint or expectation
// naming a row that is not in the chain means rows were cut off.
func (v *AuditVerifier) Finish() (AuditReport, error) {
	if v.broken != nil {
		return AuditReport{}, v.broken
	}
	if len(v.expect) > 0 {
		var first int64 = -1
		for seq := range v.expect {
			if first < 0 || seq < first {
				first = seq
			}
		}
		return AuditReport{}, &AuditBreak{Seq: first, Reason: fmt.Sprintf(
			"%s names it, but it is not in the sealed chain (which ends at seq %d): rows were removed", v.expect[first].what, v.prev.Seq)}
	}
	if v.sealedKeyed && v.report.Checkpoints == 0 {
		return AuditReport{}, &AuditBreak{Seq: v.prev.Seq, Reason: "sealed rows but no checkpoint: the checkpoints were removed"}
	}
	v.report.Unsealed = len(v.pendingUnsealed)
	v.report.Last = v.prev
	return v.report, nil
}

// auditPage is how many events VerifyAudit reads per ListAudit call.
const auditPage = 1000

// VerifyAudit checks the whole trail of s, as it is now, against key, its
// checkpoints and expect. A *AuditBreak error names the first broken seq.
func VerifyAudit(ctx context.Context, s Audit, key []byte, expect ...AuditAnchor) (AuditReport, error) {
	cps, err := s.ListAuditCheckpoints(ctx)
	if err != nil {
		return AuditReport{}, fmt.Errorf("read audit checkpoints: %w", err)
	}
	v, err := NewAuditVerifier(key, cps, expect...)
	if err != nil {
		return AuditReport{}, err
	}
	var after int64
	for {
		events, err := s.ListAudit(ctx, after, auditPage)
		if err != nil {
			return AuditReport{}, fmt.Errorf("read audit trail: %w", err)
		}
		if len(events) == 0 {
			return v.Finish()
		}
		if err := v.Add(events); err != nil {
			return AuditReport{}, err
		}
		after = events[len(events)-1].Seq
	}
}

// ErrNoAuditKey is returned by stores asked to append or seal audit events
// without a key.
var ErrNoAuditKey = errors.New("no audit key configured")
