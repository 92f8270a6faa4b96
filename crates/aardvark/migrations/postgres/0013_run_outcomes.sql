-- What a run did besides collecting, so that its record says it (`GET /api/1/runs/{id}`):
-- principals left uncollected because the run was stopped (counted, never failures), and the
-- principals `--prune` deleted and the `-r` ARNs no listing held (named).
ALTER TABLE aardvark_run_accounts ADD COLUMN principals_interrupted BIGINT NOT NULL DEFAULT 0;
CREATE TABLE aardvark_run_principals (
	id BIGSERIAL PRIMARY KEY,
	run_id BIGINT NOT NULL REFERENCES aardvark_runs (id),
	account_id TEXT NOT NULL,
	arn TEXT NOT NULL,
	-- `pruned` or `not_found`
	outcome TEXT NOT NULL
);
CREATE INDEX aardvark_run_principals_run ON aardvark_run_principals (run_id);
