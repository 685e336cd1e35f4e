-- Models on the Hugging Face hub: the worker downloads them into the standard HF cache. The hub id
-- and revision are their own columns (a hub id is not a path the server could read), and such a
-- model has no path.
ALTER TABLE models DROP CONSTRAINT models_source_check;
ALTER TABLE models ADD CONSTRAINT models_source_check
    CHECK (source IN ('hf_local', 'openai', 'checkpoint', 'hf_hub'));
ALTER TABLE models ADD COLUMN hub_repo text, ADD COLUMN hub_revision text;
ALTER TABLE models ADD CONSTRAINT models_hub_repo_check CHECK ((source = 'hf_hub') = (hub_repo IS NOT NULL));
-- The initial schema's unnamed "every source but openai has a path" check.
ALTER TABLE models DROP CONSTRAINT models_check1;
ALTER TABLE models ADD CONSTRAINT models_path_check
    CHECK (source IN ('openai', 'hf_hub') OR path IS NOT NULL);
