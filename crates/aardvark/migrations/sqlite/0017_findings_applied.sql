-- What each account's findings last became (issue 25): SHA-256 of the evaluation that was
-- applied last (what holds with its evidence and wanted status, what was cleared and why, the
-- types judged). Applying the same evaluation again changes nothing but the evaluations' times,
-- so an evaluation that finds its digest here reads and plans nothing. Any other write to an
-- account's findings (archived by hand, forgotten) removes its row.
CREATE TABLE aardvark_findings_applied (
	account_id TEXT PRIMARY KEY,
	digest TEXT NOT NULL
);
