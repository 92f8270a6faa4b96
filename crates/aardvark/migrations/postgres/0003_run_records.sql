-- Records of `aardvark update` runs: one row per run, per account, per failed principal.
CREATE TABLE aardvark_runs (
	id BIGSERIAL PRIMARY KEY,
	started_at TEXT NOT NULL,
	finished_at TEXT,
	status TEXT NOT NULL,
	request TEXT NOT NULL,
	accounts_total INTEGER NOT NULL DEFAULT 0,
	accounts_ok INTEGER NOT NULL DEFAULT 0,
	accounts_partial INTEGER NOT NULL DEFAULT 0,
	accounts_failed INTEGER NOT NULL DEFAULT 0,
	principals_collected INTEGER NOT NULL DEFAULT 0,
	principals_failed INTEGER NOT NULL DEFAULT 0,
	principals_vanished INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE aardvark_run_accounts (
	id BIGSERIAL PRIMARY KEY,
	run_id BIGINT NOT NULL REFERENCES aardvark_runs (id),
	account_id TEXT NOT NULL,
	account_name TEXT,
	status TEXT NOT NULL,
	error_code TEXT,
	error_message TEXT,
	principals_listed INTEGER NOT NULL,
	principals_collected INTEGER NOT NULL,
	principals_failed INTEGER NOT NULL,
	principals_vanished INTEGER NOT NULL,
	principals_pruned INTEGER NOT NULL,
	started_at TEXT NOT NULL,
	duration_ms BIGINT NOT NULL
);
CREATE INDEX ix_aardvark_run_accounts_run ON aardvark_run_accounts (run_id);
CREATE TABLE aardvark_run_failures (
	id BIGSERIAL PRIMARY KEY,
	run_id BIGINT NOT NULL REFERENCES aardvark_runs (id),
	account_id TEXT NOT NULL,
	arn TEXT NOT NULL,
	error_code TEXT NOT NULL,
	error_message TEXT NOT NULL
);
CREATE INDEX ix_aardvark_run_failures_run ON aardvark_run_failures (run_id);
