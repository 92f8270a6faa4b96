-- Recommendations read and written by account (issue 26): one index in the order an account's
-- evaluation writes them, where three (one keyed by the finding's hashed id, written at random
-- places) made each row cost about 70 us on SQLite. A finding's recommendations are found by
-- its account and principal; /metrics counts the current ones from this index alone.
DROP INDEX aardvark_recommendations_finding;
DROP INDEX aardvark_recommendations_current;
DROP INDEX aardvark_recommendations_offered;
CREATE INDEX aardvark_recommendations_principal ON aardvark_recommendations (account_id, principal, finding_id, current, id, digest, offered);
-- What an account's recommendations were last computed from (SHA-256 of every input the rules
-- read), and how many are current: an evaluation whose inputs are the same computes nothing.
CREATE TABLE aardvark_recommendation_inputs (
	account_id TEXT PRIMARY KEY,
	digest TEXT NOT NULL,
	current BIGINT NOT NULL
);
