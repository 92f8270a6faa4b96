-- Each principal's services as the API writes them (a JSON array), so that a page is a read of
-- stored text rather than an aggregation and a rendering of every service row. The write path
-- renders in the same transaction as its changes; these triggers remove a principal's rendering
-- whenever anything it was made from changes, in the changing statement's own transaction, so a
-- rendering that exists is always current. The read path renders principals that have none.
CREATE TABLE aardvark_rendered_services (
	item_id INTEGER PRIMARY KEY,
	services TEXT NOT NULL
);

-- Statement-level, over the changed rows. Before removing, it locks the principals' rows, the
-- lock the write path holds from its first statement to its commit: a writer that changes a
-- principal's services while the write path is rendering that principal from what it read
-- earlier thus waits for that rendering to commit, then removes it. Without the wait, the
-- removal could run before the rendering is inserted and leave it stale.
CREATE FUNCTION aardvark_rendered_services_stale() RETURNS trigger AS $$
DECLARE
	principal_column text := CASE TG_TABLE_NAME WHEN 'advisor_data' THEN 'item_id' ELSE 'id' END;
	principals integer[];
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		DELETE FROM aardvark_rendered_services;
		RETURN NULL;
	END IF;
	-- Dynamic SQL: a function's static statements keep the plan made on first use, which on
	-- a new, empty database scans the whole table, whatever size it grows to.
	IF TG_OP = 'UPDATE' THEN
		EXECUTE format('SELECT array_agg(DISTINCT %1$I) FROM (SELECT %1$I FROM changed UNION ALL SELECT %1$I FROM before_change) AS c', principal_column) INTO principals;
	ELSE
		EXECUTE format('SELECT array_agg(DISTINCT %I) FROM changed', principal_column) INTO principals;
	END IF;
	IF TG_TABLE_NAME = 'advisor_data' THEN
		EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM aws_iam_object WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE) AS locked' USING principals;
	END IF;
	EXECUTE 'DELETE FROM aardvark_rendered_services WHERE item_id = ANY($1)' USING principals;
	RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER aardvark_rendered_service_inserted AFTER INSERT ON advisor_data
	REFERENCING NEW TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION aardvark_rendered_services_stale();
CREATE TRIGGER aardvark_rendered_service_updated AFTER UPDATE ON advisor_data
	REFERENCING OLD TABLE AS before_change NEW TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION aardvark_rendered_services_stale();
CREATE TRIGGER aardvark_rendered_service_deleted AFTER DELETE ON advisor_data
	REFERENCING OLD TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION aardvark_rendered_services_stale();
CREATE TRIGGER aardvark_rendered_services_truncated AFTER TRUNCATE ON advisor_data
	FOR EACH STATEMENT EXECUTE FUNCTION aardvark_rendered_services_stale();
-- `lastUpdated` is part of every service's entry.
CREATE TRIGGER aardvark_rendered_principal_inserted AFTER INSERT ON aws_iam_object
	REFERENCING NEW TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION aardvark_rendered_services_stale();
CREATE TRIGGER aardvark_rendered_principal_updated AFTER UPDATE ON aws_iam_object
	REFERENCING OLD TABLE AS before_change NEW TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION aardvark_rendered_services_stale();
CREATE TRIGGER aardvark_rendered_principal_deleted AFTER DELETE ON aws_iam_object
	REFERENCING OLD TABLE AS changed
	FOR EACH STATEMENT EXECUTE FUNCTION aardvark_rendered_services_stale();
CREATE TRIGGER aardvark_rendered_principals_truncated AFTER TRUNCATE ON aws_iam_object
	FOR EACH STATEMENT EXECUTE FUNCTION aardvark_rendered_services_stale();
