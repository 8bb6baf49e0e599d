-- PostgreSQL: ReserveRateEvent in one round trip (see flavor.go); nothing
-- on SQLite, which reserves inside its immediate transaction.
{{reserve_rate_event}};
