-- One row per (principal, namespace): keep the newest use (then the oldest row), drop the rest,
-- then let the database enforce it. Also index lower(arn) for case-insensitive ARN lookups.
DELETE FROM advisor_data WHERE id IN (
	SELECT a.id FROM advisor_data a JOIN advisor_data b
	  ON a.item_id = b.item_id AND a."serviceNamespace" = b."serviceNamespace"
	 AND (COALESCE(b."lastAuthenticated", 0) > COALESCE(a."lastAuthenticated", 0)
	      OR (COALESCE(b."lastAuthenticated", 0) = COALESCE(a."lastAuthenticated", 0) AND b.id < a.id))
);
CREATE UNIQUE INDEX IF NOT EXISTS uq_advisor_data_item_namespace ON advisor_data (item_id, "serviceNamespace");
CREATE INDEX IF NOT EXISTS ix_aws_iam_object_arn_lower ON aws_iam_object (lower(arn));
