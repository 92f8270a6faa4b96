-- A counter bumped whenever a principal is added, removed or renamed, so that the API can keep
-- the list of principals in memory and know, with one cheap read, when it went stale.
CREATE TABLE aardvark_principal_version (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	version BIGINT NOT NULL
);
INSERT INTO aardvark_principal_version (id, version) VALUES (1, 0);
CREATE TRIGGER aardvark_principal_inserted AFTER INSERT ON aws_iam_object
BEGIN
	UPDATE aardvark_principal_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER aardvark_principal_deleted AFTER DELETE ON aws_iam_object
BEGIN
	UPDATE aardvark_principal_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER aardvark_principal_renamed AFTER UPDATE OF arn ON aws_iam_object
BEGIN
	UPDATE aardvark_principal_version SET version = version + 1 WHERE id = 1;
END;
