-- Crucible's schema. Never edit a migration once it has landed: add a new one.
-- Every status/kind column is text with a CHECK so new values need only a new migration, not a type change.

CREATE TABLE teams (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only a SHA-256 of each token is kept; the plaintext is shown once at creation.
CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    team_id       uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '',
    token_hash    bytea NOT NULL UNIQUE,
    prefix        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_team ON api_tokens(team_id);

CREATE TABLE projects (
    id           uuid PRIMARY KEY,
    team_id      uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (team_id, name)
);

CREATE TABLE runs (
    id             uuid PRIMARY KEY,
    project_id     uuid NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name           text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('eval', 'generate', 'sft', 'rl', 'pretrain', 'external')),
    status         text NOT NULL CHECK (status IN ('queued', 'running', 'finished', 'failed', 'killed')),
    params         jsonb NOT NULL DEFAULT '{}'::jsonb,
    tags           jsonb NOT NULL DEFAULT '{}'::jsonb,
    parent_run_id  uuid REFERENCES runs(id) ON DELETE SET NULL,
    command        text,
    config         jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_project_created ON runs(project_id, created_at DESC);
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_parent ON runs(parent_run_id);
CREATE INDEX runs_tags ON runs USING gin (tags jsonb_path_ops);

-- One row per (run, metric key); points reference it by a small integer so each point row stays narrow.
CREATE TABLE metric_series (
    id          bigserial PRIMARY KEY,
    run_id      uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key         text NOT NULL CHECK (length(key) BETWEEN 1 AND 250),
    UNIQUE (run_id, key)
);

-- Idempotent per (run, key, step): a retried or late point overwrites, never duplicates, never drops.
-- No foreign key: its per-row check cost more than the insert itself (points are written only by
-- the one statement that also resolves their series); a trigger removes points with their series.
CREATE TABLE metric_points (
    series_id  bigint NOT NULL,
    step       bigint NOT NULL,
    value      double precision NOT NULL,
    wall_time  timestamptz NOT NULL,
    PRIMARY KEY (series_id, step)
);

CREATE FUNCTION delete_series_points() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM metric_points WHERE series_id = OLD.id;
    RETURN OLD;
END;
$$;

CREATE TRIGGER metric_series_delete_points AFTER DELETE ON metric_series
    FOR EACH ROW EXECUTE FUNCTION delete_series_points();

CREATE TABLE artifacts (
    run_id      uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    path        text NOT NULL,
    uri         text NOT NULL,
    size_bytes  bigint,
    sha256      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, path)
);

-- A dataset name has versions; a version is identified by the hash of its content.
CREATE TABLE datasets (
    id            uuid PRIMARY KEY,
    team_id       uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    version       integer NOT NULL CHECK (version >= 1),
    kind          text NOT NULL CHECK (kind IN ('math', 'code', 'choice', 'text')),
    content_hash  text NOT NULL,
    row_count     integer NOT NULL,
    source        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (team_id, name, version),
    UNIQUE (team_id, name, content_hash)
);

CREATE TABLE dataset_rows (
    dataset_id  uuid NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    idx         integer NOT NULL,
    data        jsonb NOT NULL,
    PRIMARY KEY (dataset_id, idx)
);

CREATE TABLE models (
    id                uuid PRIMARY KEY,
    team_id           uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    source            text NOT NULL CHECK (source IN ('hf_local', 'openai', 'checkpoint')),
    path              text,
    base_url          text,
    endpoint_model    text,
    architecture      text,
    config            jsonb,
    -- Checkpoints name the run and step that produced them.
    produced_by_run   uuid REFERENCES runs(id) ON DELETE SET NULL,
    step              bigint,
    -- The datasets the model was trained on, for the leaderboard's contamination check.
    training_datasets uuid[] NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (team_id, name),
    CHECK ((source = 'openai') = (base_url IS NOT NULL)),
    CHECK ((source = 'openai') OR path IS NOT NULL)
);

CREATE TABLE workers (
    id            uuid PRIMARY KEY,
    team_id       uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name          text NOT NULL,
    capabilities  jsonb NOT NULL DEFAULT '{}'::jsonb,
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);

-- The queue: workers lease rows with SELECT … FOR UPDATE SKIP LOCKED.
CREATE TABLE jobs (
    id                uuid PRIMARY KEY,
    team_id           uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('eval', 'generate', 'sft', 'rl', 'pretrain')),
    spec              jsonb NOT NULL,
    requirements      jsonb NOT NULL DEFAULT '{}'::jsonb,
    status            text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority          integer NOT NULL DEFAULT 0,
    run_id            uuid REFERENCES runs(id) ON DELETE SET NULL,
    attempts          integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    worker_id         uuid REFERENCES workers(id) ON DELETE SET NULL,
    lease_expires_at  timestamptz,
    heartbeat_at      timestamptz,
    progress          jsonb,
    error             text,
    cancel_requested  boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz
);
CREATE INDEX jobs_queue ON jobs(priority DESC, created_at) WHERE status = 'queued';
CREATE INDEX jobs_lease ON jobs(lease_expires_at) WHERE status = 'running';

CREATE TABLE evals (
    id            uuid PRIMARY KEY,
    team_id       uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    run_id        uuid REFERENCES runs(id) ON DELETE CASCADE,
    job_id        uuid REFERENCES jobs(id) ON DELETE SET NULL,
    model_id      uuid NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    benchmark     text NOT NULL,
    dataset_id    uuid REFERENCES datasets(id) ON DELETE SET NULL,
    sampling      jsonb NOT NULL,
    n_samples     integer NOT NULL CHECK (n_samples >= 1),
    status        text NOT NULL CHECK (status IN ('queued', 'running', 'finished', 'failed', 'killed')),
    problems      integer,
    -- n-gram overlap of the benchmark with the model's training datasets, computed when the eval finishes.
    contamination jsonb,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX evals_model_benchmark ON evals(team_id, model_id, benchmark);

-- One row per score kind (pass@1, pass@k, maj@k, avg@n …) with its bootstrap confidence interval.
CREATE TABLE eval_scores (
    eval_id  uuid NOT NULL REFERENCES evals(id) ON DELETE CASCADE,
    metric   text NOT NULL,
    value    double precision NOT NULL,
    ci_low   double precision,
    ci_high  double precision,
    n        integer NOT NULL,
    PRIMARY KEY (eval_id, metric)
);

-- Every sample is kept; (eval, problem, sample) makes uploads from a retried worker idempotent.
CREATE TABLE eval_samples (
    eval_id      uuid NOT NULL REFERENCES evals(id) ON DELETE CASCADE,
    problem_idx  integer NOT NULL,
    sample_idx   integer NOT NULL,
    problem_id   text NOT NULL,
    prompt       text NOT NULL,
    completion   text NOT NULL,
    extracted    text,
    verdict      text NOT NULL,
    correct      boolean NOT NULL,
    reward       double precision NOT NULL,
    tokens       integer NOT NULL,
    truncated    boolean NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (eval_id, problem_idx, sample_idx)
);

-- Every completion a run produced, browsable per step: RL rollouts (step = training step, group =
-- problem, sample = rollout) and generate outputs (step 0, group = prompt).
CREATE TABLE completions (
    run_id       uuid NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step         bigint NOT NULL,
    group_idx    integer NOT NULL,
    sample_idx   integer NOT NULL,
    problem_id   text NOT NULL,
    prompt       text NOT NULL,
    completion   text NOT NULL,
    reward       double precision,
    verdict      text,
    tokens       integer NOT NULL,
    truncated    boolean NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step, group_idx, sample_idx)
);
