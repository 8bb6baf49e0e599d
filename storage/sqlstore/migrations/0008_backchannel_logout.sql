-- OpenID Connect Back-Channel Logout (see backchannel.go).
--
-- sid is the session's public identifier, the ID token's sid claim: random
-- and unrelated to the cookie, whose hash is the row key. Sessions created
-- before this column have none (NULL) and tell no relying party when they
-- end; they are gone within one session lifetime.
ALTER TABLE sessions ADD COLUMN sid TEXT;
CREATE UNIQUE INDEX sessions_sid ON sessions (sid);

-- The relying parties each session signed in to, recorded when an auth
-- request completes from the session; they go with it.
CREATE TABLE session_clients (
	sid        TEXT NOT NULL REFERENCES sessions (sid) ON DELETE CASCADE,
	client_id  TEXT NOT NULL,
	created_at {{time}} NOT NULL,
	PRIMARY KEY (sid, client_id)
);

-- The ID token's sid comes from the auth request, a refreshed ID token's
-- from the refresh token (NULL for rows older than this column).
ALTER TABLE auth_requests ADD COLUMN sid TEXT;
ALTER TABLE refresh_tokens ADD COLUMN sid TEXT;

-- The delivery queue: one row per (ended session, client), written in the
-- transaction that ends the session, deleted once delivered or given up.
-- id is the logout token's jti, the same on every attempt so a relying
-- party can drop a duplicate. No foreign key: a deleted user's relying
-- parties must still hear of it.
CREATE TABLE backchannel_logouts (
	id              TEXT PRIMARY KEY,
	client_id       TEXT NOT NULL,
	subject         TEXT NOT NULL,
	sid             TEXT NOT NULL,
	created_at      {{time}} NOT NULL,
	attempts        INTEGER NOT NULL,
	next_attempt_at {{time}} NOT NULL,
	last_error      TEXT NOT NULL
);
CREATE INDEX backchannel_logouts_due ON backchannel_logouts (next_attempt_at);
