-- callgate schema, version 4 (SQLite). Attempts by the provider's reference: a status
-- callback names one, and reconciliation sets aside the records of attempts it knows.

CREATE INDEX attempts_provider_ref ON attempts (provider_ref) WHERE provider_ref IS NOT NULL;
