package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// auditCanonical fixes the field order of the hashed form; encoding/json
// writes map keys sorted, which makes Detail canonical too.
type auditCanonical struct {
	Seq       int64             `json:"seq"`
	Time      string            `json:"time"`
	Type      string            `json:"type"`
	Actor     string            `json:"actor"`
	UserID    string            `json:"user_id"`
	IP        string            `json:"ip"`
	UserAgent string            `json:"user_agent"`
	Detail    map[string]string `json:"detail"`
}

// AuditHash returns the chain hash of e: hex SHA-256 over prevHash and a
// canonical encoding of e's content. Seq is part of the content, so a row
// cannot be moved without breaking the chain; e.PrevHash and e.Hash are not
// read.
// Time is hashed at microsecond precision in UTC because that is what every
// backend stores; a round trip through the database keeps the hash valid.
func AuditHash(prevHash string, e AuditEvent) string {
	detail := e.Detail
	if detail == nil {
		// nil and empty must hash alike: a backend may return either.
		detail = map[string]string{}
	}
	body, err := json.Marshal(auditCanonical{
		Seq:       e.Seq,
		Time:      e.Time.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano),
		Type:      e.Type,
		Actor:     e.Actor,
		UserID:    e.UserID,
		IP:        e.IP,
		UserAgent: e.UserAgent,
		Detail:    detail,
	})
	if err != nil {
		// Marshalling strings and a string map cannot fail.
		panic("storage: audit canonical encoding: " + err.Error())
	}
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write([]byte{'\n'})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// VerifyAuditChain checks events (in Seq order) against the chain, starting
// from prevHash, the Hash of the row before events[0] ("" at the very
// start). It returns the Seq of the first event whose link is broken —
// altered content, a wrong PrevHash, or a gap in Seq — and false, or
// 0 and true when the whole slice verifies.
func VerifyAuditChain(events []AuditEvent, prevHash string) (brokenSeq int64, ok bool) {
	for i, e := range events {
		if i > 0 && e.Seq != events[i-1].Seq+1 {
			return e.Seq, false
		}
		if e.PrevHash != prevHash || AuditHash(prevHash, e) != e.Hash {
			return e.Seq, false
		}
		prevHash = e.Hash
	}
	return 0, true
}
