-- When EndUserAccess last signed the user out everywhere. A login whose
-- proof is older (a passkey assertion verified just before the support
-- centre deleted the passkeys) must not open a session or complete an
-- auth request afterwards. NULL: never.
ALTER TABLE users ADD COLUMN access_valid_after {{time}};
