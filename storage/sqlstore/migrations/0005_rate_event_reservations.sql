-- A reserved rate event (ReserveRateEvent) carries a random id so that the
-- attempt it stands for can be released once it turns out not to count (a
-- right password); events recorded without a reservation keep ''.
ALTER TABLE rate_events ADD COLUMN id TEXT NOT NULL DEFAULT '';
