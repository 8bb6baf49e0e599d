-- PostgreSQL: RememberDevice in one round trip (see flavor.go); nothing
-- on SQLite, which remembers inside its immediate transaction.
{{remember_device}};
