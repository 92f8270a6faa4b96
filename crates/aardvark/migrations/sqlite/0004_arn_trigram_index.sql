-- PostgreSQL adds a trigram index for substring searches here; SQLite has no equivalent, and
-- keeps the migration versions of both databases in step.
SELECT 1;
