-- The types in braces are rewritten per flavour (see migrate.go):
-- {{time}} is TIMESTAMPTZ on PostgreSQL and unix microseconds on SQLite,
-- {{bytes}} is BYTEA or BLOB. String lists are JSON text.

CREATE TABLE users (
	id                 TEXT PRIMARY KEY,
	login_id           TEXT NOT NULL UNIQUE,
	email              TEXT NOT NULL,
	display_name       TEXT NOT NULL,
	password_hash      TEXT NOT NULL,
	password_temporary BOOLEAN NOT NULL,
	locked             BOOLEAN NOT NULL,
	created_at         {{time}} NOT NULL,
	updated_at         {{time}} NOT NULL
);

CREATE TABLE sessions (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	auth_time    {{time}},
	amr          TEXT NOT NULL,
	acr          TEXT NOT NULL,
	created_at   {{time}} NOT NULL,
	last_seen_at {{time}},
	expires_at   {{time}} NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- auth_requests.user_id stays empty until login, so it cannot be a foreign
-- key; DeleteUser removes the user's requests explicitly.
CREATE TABLE auth_requests (
	id                     TEXT PRIMARY KEY,
	client_id              TEXT NOT NULL,
	redirect_uri           TEXT NOT NULL,
	state                  TEXT NOT NULL,
	nonce                  TEXT NOT NULL,
	scopes                 TEXT NOT NULL,
	response_type          TEXT NOT NULL,
	response_mode          TEXT NOT NULL,
	code_challenge         TEXT NOT NULL,
	code_challenge_method  TEXT NOT NULL,
	prompt                 TEXT NOT NULL,
	max_age_us             BIGINT,
	login_hint             TEXT NOT NULL,
	id_token_hint_subject  TEXT NOT NULL,
	acr_values             TEXT NOT NULL,
	ui_locales             TEXT NOT NULL,
	created_at             {{time}} NOT NULL,
	expires_at             {{time}} NOT NULL,
	user_id                TEXT NOT NULL,
	auth_time              {{time}},
	amr                    TEXT NOT NULL,
	acr                    TEXT NOT NULL,
	done                   BOOLEAN NOT NULL,
	code_hash              TEXT UNIQUE,
	consumed_at            {{time}}
);
CREATE INDEX auth_requests_user_id ON auth_requests (user_id);
CREATE INDEX auth_requests_expires_at ON auth_requests (expires_at);

CREATE TABLE access_tokens (
	id               TEXT PRIMARY KEY,
	client_id        TEXT NOT NULL,
	subject          TEXT NOT NULL,
	audience         TEXT NOT NULL,
	scopes           TEXT NOT NULL,
	auth_request_id  TEXT NOT NULL,
	refresh_token_id TEXT NOT NULL,
	expires_at       {{time}} NOT NULL,
	created_at       {{time}} NOT NULL
);
CREATE INDEX access_tokens_subject ON access_tokens (subject);
CREATE INDEX access_tokens_auth_request_id ON access_tokens (auth_request_id);
CREATE INDEX access_tokens_refresh_token_id ON access_tokens (refresh_token_id);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);

CREATE TABLE refresh_tokens (
	id              TEXT PRIMARY KEY,
	family_id       TEXT NOT NULL,
	client_id       TEXT NOT NULL,
	subject         TEXT NOT NULL,
	audience        TEXT NOT NULL,
	scopes          TEXT NOT NULL,
	amr             TEXT NOT NULL,
	acr             TEXT NOT NULL,
	auth_time       {{time}},
	auth_request_id TEXT NOT NULL,
	access_token_id TEXT NOT NULL,
	created_at      {{time}} NOT NULL,
	expires_at      {{time}} NOT NULL,
	rotated_at      {{time}},
	revoked_at      {{time}}
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_subject ON refresh_tokens (subject);
CREATE INDEX refresh_tokens_auth_request_id ON refresh_tokens (auth_request_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE signing_keys (
	id          TEXT PRIMARY KEY,
	algorithm   TEXT NOT NULL,
	private_key {{bytes}} NOT NULL,
	public_key  {{bytes}} NOT NULL,
	created_at  {{time}} NOT NULL,
	active_from {{time}} NOT NULL,
	retire_at   {{time}} NOT NULL,
	expires_at  {{time}} NOT NULL
);

CREATE TABLE login_flows (
	id                   TEXT PRIMARY KEY,
	auth_request_id      TEXT NOT NULL,
	user_id              TEXT NOT NULL,
	login_id             TEXT NOT NULL,
	purpose              TEXT NOT NULL,
	step                 TEXT NOT NULL,
	password_verified_at {{time}},
	otp_verified_at      {{time}},
	passkey_verified_at  {{time}},
	otp_hash             TEXT NOT NULL,
	otp_expires_at       {{time}},
	otp_attempts         BIGINT NOT NULL,
	otp_sent_at          {{time}},
	data                 {{bytes}},
	version              BIGINT NOT NULL,
	created_at           {{time}} NOT NULL,
	expires_at           {{time}} NOT NULL
);
CREATE INDEX login_flows_user_id ON login_flows (user_id);
CREATE INDEX login_flows_expires_at ON login_flows (expires_at);

CREATE TABLE otp_sends (
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	sent_at {{time}} NOT NULL
);
CREATE INDEX otp_sends_user_sent ON otp_sends (user_id, sent_at);

CREATE TABLE webauthn_sessions (
	challenge  TEXT PRIMARY KEY,
	ceremony   TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	flow_id    TEXT NOT NULL,
	data       {{bytes}},
	created_at {{time}} NOT NULL,
	expires_at {{time}} NOT NULL
);
CREATE INDEX webauthn_sessions_user_id ON webauthn_sessions (user_id);
CREATE INDEX webauthn_sessions_expires_at ON webauthn_sessions (expires_at);

CREATE TABLE credentials (
	id               {{bytes}} PRIMARY KEY,
	user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	public_key       {{bytes}} NOT NULL,
	attestation_type TEXT NOT NULL,
	aaguid           {{bytes}},
	sign_count       BIGINT NOT NULL,
	transports       TEXT NOT NULL,
	user_present     BOOLEAN NOT NULL,
	user_verified    BOOLEAN NOT NULL,
	backup_eligible  BOOLEAN NOT NULL,
	backup_state     BOOLEAN NOT NULL,
	clone_warning    BOOLEAN NOT NULL,
	attachment       TEXT NOT NULL,
	name             TEXT NOT NULL,
	created_at       {{time}} NOT NULL,
	last_used_at     {{time}}
);
CREATE INDEX credentials_user_id ON credentials (user_id);

-- Audit rows outlive the user they describe: no foreign key.
CREATE TABLE audit_events (
	seq        BIGINT PRIMARY KEY,
	time       {{time}} NOT NULL,
	type       TEXT NOT NULL,
	actor      TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	ip         TEXT NOT NULL,
	user_agent TEXT NOT NULL,
	detail     TEXT NOT NULL,
	prev_hash  TEXT NOT NULL,
	hash       TEXT NOT NULL
);
CREATE INDEX audit_events_user_id ON audit_events (user_id);
