-- Beside each kept rendering, its digest: the principal's lastUpdated and, per service, what a
-- combined answer (`combine=true`) takes of it, without the keys. A third of the rendering's size
-- and in rows of their own: combining an account's principals reads their digests alone.
-- Written after its rendering, in the same transaction, and removed whenever the rendering is
-- replaced or removed, so a digest that exists describes the rendering kept now. (The writers
-- that remove renderings lock the principals first, as migration 0006 describes.)
CREATE TABLE aardvark_rendered_digests (
	item_id INTEGER PRIMARY KEY,
	format INTEGER NOT NULL,
	digest TEXT NOT NULL
);

CREATE FUNCTION aardvark_rendered_digests_stale() RETURNS trigger AS $$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		DELETE FROM aardvark_rendered_digests;
	ELSE
		-- Dynamic SQL, as in migration 0006: a static statement keeps its first plan.
		EXECUTE 'DELETE FROM aardvark_rendered_digests WHERE item_id = $1' USING OLD.item_id;
	END IF;
	RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER aardvark_rendered_digest_replaced AFTER UPDATE OR DELETE ON aardvark_rendered_services
	FOR EACH ROW EXECUTE FUNCTION aardvark_rendered_digests_stale();
CREATE TRIGGER aardvark_rendered_digests_truncated AFTER TRUNCATE ON aardvark_rendered_services
	FOR EACH STATEMENT EXECUTE FUNCTION aardvark_rendered_digests_stale();
