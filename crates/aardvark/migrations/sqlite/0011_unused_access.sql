-- What unused-access answers read (`GET /api/1/unused`, `aardvark report unused`), in tables of
-- our own; upstream's two tables are unchanged. Per principal: its kind, path and CreateDate
-- from the listing, and the newest and oldest last use of its services after each write (so
-- that per-account summaries read one row per principal, not its services). Per service its
-- LastAuthenticatedRegion, and per tracked action its last access (`GET /api/1/actions`).
-- No foreign keys: the write path keeps them in step, and pruning removes them with the
-- principal. Principals stored before this table (or by upstream) get their row when the
-- schema is migrated.
CREATE TABLE aardvark_principals (
	item_id INTEGER PRIMARY KEY,
	account TEXT NOT NULL,
	kind TEXT NOT NULL,
	path TEXT,
	created_ms BIGINT,
	last_used_ms BIGINT,
	least_used_ms BIGINT
);
-- Covering what the per-account totals read, so that they are one ordered scan of it.
CREATE INDEX ix_aardvark_principals_account ON aardvark_principals (account, kind, created_ms, last_used_ms, least_used_ms);
CREATE TABLE aardvark_service_regions (
	item_id INTEGER NOT NULL,
	"serviceNamespace" TEXT NOT NULL,
	region TEXT NOT NULL,
	PRIMARY KEY (item_id, "serviceNamespace")
);
CREATE TABLE aardvark_actions (
	id INTEGER PRIMARY KEY,
	item_id INTEGER NOT NULL,
	"serviceNamespace" TEXT NOT NULL,
	action TEXT NOT NULL,
	"lastAccessed" BIGINT NOT NULL,
	entity TEXT,
	region TEXT
);
CREATE UNIQUE INDEX ix_aardvark_actions_item ON aardvark_actions (item_id, "serviceNamespace", action);
