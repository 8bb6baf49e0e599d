-- When the customer last declined the passkey offer after a password
-- login (login/passkeyoffer.go); NULL: never. The offer comes back once
-- login.passkey_offer.interval has passed.
ALTER TABLE users ADD COLUMN passkey_offer_skipped_at {{time}};
