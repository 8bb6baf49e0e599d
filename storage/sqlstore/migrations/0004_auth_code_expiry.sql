-- An authorization code lives about a minute, far shorter than its request
-- (kept until expires_at to recognise a replayed code). NULL for codes
-- issued before this column existed: the OP refuses those as expired.
ALTER TABLE auth_requests ADD COLUMN code_expires_at {{time}};
