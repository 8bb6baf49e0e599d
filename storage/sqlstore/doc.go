// Package sqlstore implements storage.Store on PostgreSQL (lib/pq) and
// SQLite (modernc.org/sqlite) with one set of SQL statements.
//
// Statements are written once with `?` placeholders and rebound per driver;
// the few real differences between the flavours (column types, how a
// store-wide lock is taken, how times travel) live in flavor.go and lockTx.
//
// One file per table family, each holding the methods of the storage role
// of the same name:
//
//	users.go          users (storage.Users)
//	sessions.go       sessions, and EndUserAccess across sessions and tokens (storage.Sessions)
//	authrequests.go   auth_requests and their codes (storage.AuthRequests)
//	tokens.go         access_tokens, refresh_tokens and their families (storage.Tokens)
//	signingkeys.go    signing_keys (storage.SigningKeys)
//	loginflows.go     login_flows (storage.LoginFlows)
//	ratelimits.go     rate_events (storage.RateLimits)
//	webauthn.go       webauthn_sessions (storage.WebAuthnSessions)
//	credentials.go    credentials, the passkeys (storage.Credentials)
//	audit.go          audit_events and audit_checkpoints, the keyed chain (storage.Audit)
//	housekeeping.go   DeleteExpired across every table (storage.Housekeeping)
//	backchannel.go    endSessions, the one way a session row goes (its logouts
//	                  enqueued), session_clients, and the backchannel_logouts
//	                  queue (storage.BackchannelLogouts)
//
// and what they share:
//
//	sqlstore.go       Store, Open, the connection pool, Ping and Close
//	query.go          running statements and transactions: rebinding, SQLite's
//	                  prepared statements and writer connection (its writers
//	                  first come, first served), store-wide locks, the expiry rule
//	errors.go         driver errors mapped onto the storage sentinels
//	flavor.go         column types and how times and lists travel per engine
//	migrate.go        Migrate, applying migrations/NNNN_name.sql in order
package sqlstore
