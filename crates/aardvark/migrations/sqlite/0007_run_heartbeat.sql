-- Who is running a run, and when it last said it was alive: a run whose process died
-- (kill -9, power loss) is marked `interrupted` by the next `update` or `serve` start.
ALTER TABLE aardvark_runs ADD COLUMN heartbeat_at TEXT;
ALTER TABLE aardvark_runs ADD COLUMN host TEXT;
ALTER TABLE aardvark_runs ADD COLUMN pid BIGINT;
