-- Principals a run found deleted between listing and collection, per account, so that a run's
-- record names them (`GET /api/1/runs/{id}`).
CREATE TABLE aardvark_run_vanished (
	id INTEGER PRIMARY KEY,
	run_id BIGINT NOT NULL REFERENCES aardvark_runs (id),
	account_id TEXT NOT NULL,
	arn TEXT NOT NULL
);
CREATE INDEX aardvark_run_vanished_run ON aardvark_run_vanished (run_id);
-- Each account's latest outcome (`GET /api/1/accounts`) without reading every record.
CREATE INDEX ix_aardvark_run_accounts_account ON aardvark_run_accounts (account_id, id);
