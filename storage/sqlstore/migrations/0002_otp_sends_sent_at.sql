-- DeleteExpired sweeps otp_sends by sent_at alone, which the (user_id,
-- sent_at) index cannot serve.
CREATE INDEX otp_sends_sent_at ON otp_sends (sent_at);
