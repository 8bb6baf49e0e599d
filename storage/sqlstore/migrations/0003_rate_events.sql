-- One table for every rate limit (OTP sends per user, login failures per
-- login ID or IP, …) instead of a table per limit. key is whatever the limit
-- counts by, so it carries no foreign key; DeleteUser removes a user's rows
-- explicitly. The (kind, key, at) index answers the hot-path count from the
-- index alone; the (at) one serves the sweep.
CREATE TABLE rate_events (
	kind TEXT NOT NULL,
	key  TEXT NOT NULL,
	at   {{time}} NOT NULL
);
CREATE INDEX rate_events_kind_key_at ON rate_events (kind, key, at);
CREATE INDEX rate_events_at ON rate_events (at);

INSERT INTO rate_events (kind, key, at) SELECT 'otp_send', user_id, sent_at FROM otp_sends;
DROP TABLE otp_sends;
