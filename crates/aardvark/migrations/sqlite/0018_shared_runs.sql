-- Runs shared by several processes on one PostgreSQL database (on SQLite the columns are
-- filled for one process, and the work table stays empty). A shared run's accounts are
-- rows of work: a worker claims pending rows (`FOR UPDATE SKIP LOCKED`) under a lease that it
-- renews while it collects; a row whose lease expired is claimed again, and its attempt number
-- (`attempts`) tells one claim from the next, so that a stale worker cannot record over the
-- claimant that replaced it. Each account's outcome names its worker and its attempts.
ALTER TABLE aardvark_runs ADD COLUMN shared BIGINT NOT NULL DEFAULT 0;
ALTER TABLE aardvark_run_accounts ADD COLUMN worker_host TEXT;
ALTER TABLE aardvark_run_accounts ADD COLUMN worker_pid BIGINT;
ALTER TABLE aardvark_run_accounts ADD COLUMN attempts BIGINT NOT NULL DEFAULT 1;
CREATE TABLE aardvark_run_work (
	run_id BIGINT NOT NULL REFERENCES aardvark_runs (id),
	account_id TEXT NOT NULL,
	-- the order the run resolved its accounts in
	position BIGINT NOT NULL,
	account_name TEXT,
	-- the account's aliases, a JSON list
	aliases TEXT NOT NULL,
	-- `pending`, `claimed` or `done`
	state TEXT NOT NULL,
	attempts BIGINT NOT NULL DEFAULT 0,
	worker_host TEXT,
	worker_pid BIGINT,
	-- a number of the worker process's own: host and pid may repeat across containers
	worker_key BIGINT,
	lease_until TEXT,
	PRIMARY KEY (run_id, account_id)
);
CREATE INDEX aardvark_run_work_open ON aardvark_run_work (run_id, state, position);
