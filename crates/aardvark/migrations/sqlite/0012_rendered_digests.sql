-- Beside each kept rendering, its digest: the principal's lastUpdated and, per service, what a
-- combined answer (`combine=true`) takes of it, without the keys. A third of the rendering's size
-- and in rows of their own, densely packed (a rendering takes more than a page): combining an
-- account's principals reads their digests alone. Written after its rendering, in the same
-- transaction, and removed whenever the rendering is replaced or removed, so a digest that
-- exists describes the rendering kept now.
CREATE TABLE aardvark_rendered_digests (
	item_id INTEGER PRIMARY KEY,
	format INTEGER NOT NULL,
	digest TEXT NOT NULL
);
CREATE TRIGGER aardvark_rendered_digest_replaced AFTER UPDATE ON aardvark_rendered_services
BEGIN
	DELETE FROM aardvark_rendered_digests WHERE item_id IN (OLD.item_id, NEW.item_id);
END;
CREATE TRIGGER aardvark_rendered_digest_removed AFTER DELETE ON aardvark_rendered_services
BEGIN
	DELETE FROM aardvark_rendered_digests WHERE item_id = OLD.item_id;
END;
