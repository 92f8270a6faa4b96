-- Least-privilege recommendations (issue 26): each unused_permission finding's recommendation
-- as each evaluation computed it, a row written only when it changed, so that a finding's
-- recommendations say what was recommended when. `current` marks the one in force; it is
-- withdrawn (0) when its finding stops holding or its principal's policies are gone.
CREATE TABLE aardvark_recommendations (
	id INTEGER PRIMARY KEY,
	finding_id TEXT NOT NULL,
	principal TEXT NOT NULL,
	account_id TEXT NOT NULL,
	computed_at TEXT NOT NULL,
	run_id BIGINT,
	-- SHA-256 of the recommendation's JSON: an evaluation that computes the same writes nothing.
	digest TEXT NOT NULL,
	offered BIGINT NOT NULL,
	steps BIGINT NOT NULL,
	current BIGINT NOT NULL,
	recommendation TEXT NOT NULL
);
CREATE INDEX aardvark_recommendations_finding ON aardvark_recommendations (finding_id, id);
-- The current ones in order, and what an evaluation compares with read from the index alone.
CREATE INDEX aardvark_recommendations_current ON aardvark_recommendations (current, account_id, principal, finding_id, id, digest);
-- /metrics counts the current ones by state from the index alone.
CREATE INDEX aardvark_recommendations_offered ON aardvark_recommendations (current, offered);
