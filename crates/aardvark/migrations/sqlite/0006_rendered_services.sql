-- Each principal's services as the API writes them (a JSON array), so that a page is a read of
-- stored text rather than an aggregation and a rendering of every service row. The write path
-- renders in the same transaction as its changes; these triggers remove a principal's rendering
-- whenever anything it was made from changes, in the changing statement's own transaction, so a
-- rendering that exists is always current. The read path renders principals that have none.
CREATE TABLE aardvark_rendered_services (
	item_id INTEGER PRIMARY KEY,
	services TEXT NOT NULL
);
CREATE TRIGGER aardvark_rendered_service_inserted AFTER INSERT ON advisor_data
BEGIN
	DELETE FROM aardvark_rendered_services WHERE item_id = NEW.item_id;
END;
CREATE TRIGGER aardvark_rendered_service_updated AFTER UPDATE ON advisor_data
BEGIN
	DELETE FROM aardvark_rendered_services WHERE item_id IN (OLD.item_id, NEW.item_id);
END;
CREATE TRIGGER aardvark_rendered_service_deleted AFTER DELETE ON advisor_data
BEGIN
	DELETE FROM aardvark_rendered_services WHERE item_id = OLD.item_id;
END;
-- `lastUpdated` is part of every service's entry.
CREATE TRIGGER aardvark_rendered_principal_inserted AFTER INSERT ON aws_iam_object
BEGIN
	DELETE FROM aardvark_rendered_services WHERE item_id = NEW.id;
END;
CREATE TRIGGER aardvark_rendered_principal_updated AFTER UPDATE ON aws_iam_object
BEGIN
	DELETE FROM aardvark_rendered_services WHERE item_id IN (OLD.id, NEW.id);
END;
CREATE TRIGGER aardvark_rendered_principal_deleted AFTER DELETE ON aws_iam_object
BEGIN
	DELETE FROM aardvark_rendered_services WHERE item_id = OLD.id;
END;
