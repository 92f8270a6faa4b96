-- Every change of a (principal, namespace) lastAuthenticated a collection saw
-- (`GET /api/1/history`). `previous` is NULL for the first value seen; `observed_ms` is epoch
-- milliseconds. No foreign key: the write path keeps it in step, and pruning removes a
-- principal's history with it.
CREATE TABLE aardvark_history (
	id INTEGER PRIMARY KEY,
	item_id INTEGER NOT NULL,
	"serviceNamespace" TEXT NOT NULL,
	"lastAuthenticated" BIGINT NOT NULL,
	previous BIGINT,
	observed_ms BIGINT NOT NULL,
	run_id BIGINT
);
CREATE INDEX ix_aardvark_history_item ON aardvark_history (item_id);
-- What was stored before history was kept is each value's first sighting, observed when its
-- principal was last collected.
INSERT INTO aardvark_history (item_id, "serviceNamespace", "lastAuthenticated", previous, observed_ms, run_id)
SELECT a.item_id, a."serviceNamespace", COALESCE(a."lastAuthenticated", 0), NULL,
	COALESCE(CAST(ROUND((julianday(o."lastUpdated") - 2440587.5) * 86400000) AS INTEGER), 0), NULL
FROM advisor_data a JOIN aws_iam_object o ON o.id = a.item_id
WHERE a."serviceNamespace" IS NOT NULL
ORDER BY a.item_id, a."serviceNamespace";
