-- The audit chain becomes keyed (see audit.go). The database assigns seq,
-- so appending is one INSERT without a lock; nonce and mac are the row's
-- keyed MAC, prev_hash and hash stay empty until the sealer links the row.
-- Rows already here keep their seq and unkeyed hashes with an empty mac:
-- verify checks them with the old rule, and the first checkpoint pins them.
-- inserted_at is the store's clock at append (time may be set by the caller),
-- which the sealer's grace period for seq gaps is measured against.
DROP INDEX audit_events_user_id;
ALTER TABLE audit_events RENAME TO audit_events_unkeyed;
CREATE TABLE audit_events (
	seq         {{serial}},
	time        {{time}} NOT NULL,
	type        TEXT NOT NULL,
	actor       TEXT NOT NULL,
	user_id     TEXT NOT NULL,
	ip          TEXT NOT NULL,
	user_agent  TEXT NOT NULL,
	detail      TEXT NOT NULL,
	nonce       TEXT NOT NULL,
	mac         TEXT NOT NULL,
	inserted_at {{time}} NOT NULL,
	prev_hash   TEXT NOT NULL,
	hash        TEXT NOT NULL
);
INSERT INTO audit_events (seq, time, type, actor, user_id, ip, user_agent, detail, nonce, mac, inserted_at, prev_hash, hash)
	SELECT seq, time, type, actor, user_id, ip, user_agent, detail, '', '', time, prev_hash, hash FROM audit_events_unkeyed;
DROP TABLE audit_events_unkeyed;
{{resume_audit_seq}};
CREATE INDEX audit_events_user_id ON audit_events (user_id);
-- The sealer's work list: only the few rows not yet linked.
CREATE INDEX audit_events_unsealed ON audit_events (seq) WHERE hash = '';

CREATE TABLE audit_checkpoints (
	id   {{serial}},
	time {{time}} NOT NULL,
	seq  BIGINT NOT NULL,
	hash TEXT NOT NULL,
	mac  TEXT NOT NULL
);
