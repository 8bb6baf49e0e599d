-- S8 lists a customer's sessions with the browser they came from: the
-- User-Agent as the pages bounded it (empty for sessions older than this
-- column).
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';

-- The websites each session signed in to are session_clients (0008).

-- Browsers a customer has signed in on, by the hash of a long-lived device
-- cookie bound to the user (so two customers sharing a browser are not
-- linked in the database); the "new sign-in" mail goes when a session starts
-- on a browser not listed here.
CREATE TABLE known_devices (
	user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	device_hash   TEXT NOT NULL,
	first_seen_at {{time}} NOT NULL,
	last_seen_at  {{time}} NOT NULL,
	PRIMARY KEY (user_id, device_hash)
);

-- Staff enrolment links (`idp users enrolment-link`), by the hash of the
-- link's secret. A link is live while neither used nor superseded and not
-- expired; at most one is live per user, which the partial index makes
-- race-free for two staff issuing at once. Rows are kept a while after
-- expiry so an old link still gets its own answer.
CREATE TABLE enrolment_links (
	id            TEXT PRIMARY KEY,
	user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	issued_by     TEXT NOT NULL,
	created_at    {{time}} NOT NULL,
	expires_at    {{time}} NOT NULL,
	used_at       {{time}},
	superseded_at {{time}}
);
CREATE UNIQUE INDEX enrolment_links_live ON enrolment_links (user_id) WHERE used_at IS NULL AND superseded_at IS NULL;
CREATE INDEX enrolment_links_expires_at ON enrolment_links (expires_at);
