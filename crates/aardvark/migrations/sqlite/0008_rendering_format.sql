-- Which format a kept rendering is in: a binary serves only renderings of the format it writes,
-- and answers principals whose rendering is of another format from their rows until it renders
-- them again. Renderings kept before this migration are format 1, the only one there was.
ALTER TABLE aardvark_rendered_services ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
