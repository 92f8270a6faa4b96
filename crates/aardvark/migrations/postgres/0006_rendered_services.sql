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
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		DELETE FROM aardvark_rendered_services;
	ELSIF TG_TABLE_NAME = 'advisor_data' THEN
		IF TG_OP = 'UPDATE' THEN
			PERFORM 1 FROM aws_iam_object WHERE id IN (SELECT item_id FROM before_change) ORDER BY id FOR NO KEY UPDATE;
			DELETE FROM aardvark_rendered_services WHERE item_id IN (SELECT item_id FROM before_change);
		END IF;
		PERFORM 1 FROM aws_iam_object WHERE id IN (SELECT item_id FROM changed) ORDER BY id FOR NO KEY UPDATE;
		DELETE FROM aardvark_rendered_services WHERE item_id IN (SELECT item_id FROM changed);
	ELSE
		IF TG_OP = 'UPDATE' THEN
			DELETE FROM aardvark_rendered_services WHERE item_id IN (SELECT id FROM before_change);
		END IF;
		DELETE FROM aardvark_rendered_services WHERE item_id IN (SELECT id FROM changed);
	END IF;
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
