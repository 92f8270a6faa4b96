-- Identity details (issue 25): what GetAccountAuthorizationDetails, the credential report and
-- ListAccessKeys say of each account, replaced per account and part at each collection of it;
-- policy documents decoded, once per distinct document; which parts each run collected per
-- account; and the findings with their status history.
CREATE TABLE aardvark_identities (
	arn TEXT PRIMARY KEY,
	account_id TEXT NOT NULL,
	kind TEXT NOT NULL,
	created_ms BIGINT,
	-- Roles: RoleLastUsed.
	last_used_ms BIGINT,
	last_used_region TEXT,
	-- JSON: {"key": "value"}, ["group"], ["policy arn"], {"policy name": "document digest"}.
	tags TEXT NOT NULL,
	groups_json TEXT NOT NULL,
	managed_policies TEXT NOT NULL,
	inline_policies TEXT NOT NULL
);
CREATE INDEX aardvark_identities_account ON aardvark_identities (account_id);
CREATE TABLE aardvark_policy_documents (
	digest TEXT PRIMARY KEY,
	document TEXT NOT NULL
);
CREATE TABLE aardvark_managed_policies (
	account_id TEXT NOT NULL,
	arn TEXT NOT NULL,
	name TEXT NOT NULL,
	default_version TEXT NOT NULL,
	digest TEXT NOT NULL,
	PRIMARY KEY (account_id, arn)
);
CREATE TABLE aardvark_credentials (
	arn TEXT PRIMARY KEY,
	account_id TEXT NOT NULL,
	user_name TEXT NOT NULL,
	created_ms BIGINT,
	password_enabled BIGINT NOT NULL,
	password_last_used_ms BIGINT,
	-- The report's word when there is no date: N/A, no_information, not_supported.
	password_last_used_note TEXT,
	password_last_changed_ms BIGINT,
	mfa_active BIGINT NOT NULL
);
CREATE INDEX aardvark_credentials_account ON aardvark_credentials (account_id);
CREATE TABLE aardvark_access_keys (
	arn TEXT NOT NULL,
	slot BIGINT NOT NULL,
	account_id TEXT NOT NULL,
	key_id TEXT,
	active BIGINT NOT NULL,
	created_ms BIGINT,
	last_used_ms BIGINT,
	last_used_region TEXT,
	last_used_service TEXT,
	PRIMARY KEY (arn, slot)
);
CREATE INDEX aardvark_access_keys_account ON aardvark_access_keys (account_id);
CREATE TABLE aardvark_run_account_parts (
	id INTEGER PRIMARY KEY,
	run_id BIGINT NOT NULL REFERENCES aardvark_runs (id),
	account_id TEXT NOT NULL,
	part TEXT NOT NULL,
	-- collected, failed or off
	status TEXT NOT NULL,
	error_code TEXT,
	error_message TEXT
);
CREATE INDEX aardvark_run_account_parts_run ON aardvark_run_account_parts (run_id);
CREATE TABLE aardvark_findings (
	id TEXT PRIMARY KEY,
	type TEXT NOT NULL,
	resource TEXT NOT NULL,
	principal TEXT NOT NULL,
	account_id TEXT NOT NULL,
	status TEXT NOT NULL,
	-- Why it has its status: a resolution's cause, an exclusion's rule, a person's reason.
	reason TEXT,
	-- Who archived it by hand; NULL for an exclusion.
	archived_by TEXT,
	first_seen TEXT NOT NULL,
	-- Whether its condition held at the latest evaluation of its type in its account. While
	-- it holds, its last sighting is that evaluation's (aardvark_finding_evaluations), so
	-- that an evaluation that changes nothing writes no finding; when it stops, last_seen
	-- keeps the last one.
	holds BIGINT NOT NULL,
	last_seen TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	evidence TEXT NOT NULL
);
CREATE INDEX aardvark_findings_account ON aardvark_findings (account_id, type);
CREATE INDEX aardvark_findings_principal ON aardvark_findings (principal);
CREATE TABLE aardvark_finding_history (
	id INTEGER PRIMARY KEY,
	finding_id TEXT NOT NULL,
	at TEXT NOT NULL,
	run_id BIGINT,
	status TEXT NOT NULL,
	reason TEXT,
	actor TEXT
);
CREATE INDEX aardvark_finding_history_finding ON aardvark_finding_history (finding_id);
-- Each account's latest evaluation of each type: when, in which run, the one before it, and
-- whether the latest collection could not judge it (its part failed: findings stale).
CREATE TABLE aardvark_finding_evaluations (
	account_id TEXT NOT NULL,
	type TEXT NOT NULL,
	evaluated_at TEXT NOT NULL,
	previous_at TEXT,
	stale BIGINT NOT NULL,
	PRIMARY KEY (account_id, type)
);
-- The window and exclusions findings were last evaluated with (one row).
CREATE TABLE aardvark_findings_rules (
	id BIGINT PRIMARY KEY,
	rules TEXT NOT NULL
);
