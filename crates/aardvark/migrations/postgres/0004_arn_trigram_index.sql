-- Substring searches (`phrase`) use a trigram index where the pg_trgm extension can be had;
-- without it (no privilege to create extensions) they scan the table, as before.
DO $$
BEGIN
	CREATE EXTENSION IF NOT EXISTS pg_trgm;
	CREATE INDEX IF NOT EXISTS ix_aws_iam_object_arn_trgm ON aws_iam_object USING gin (lower(arn) gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE 'pg_trgm is not available (%); phrase searches will scan aws_iam_object', SQLERRM;
END
$$;
