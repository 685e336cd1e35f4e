-- Dashboard sign-in. A session is what the browser's cookie names; a sign-in link is a one-time
-- code (printed by `crucible up`) that a browser exchanges for a session. Both keep only a SHA-256
-- of their secret and die with the API token they were made from (revoking it signs them out).
CREATE TABLE sessions (
    secret_hash  bytea PRIMARY KEY,
    token_id     uuid NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX sessions_token ON sessions(token_id);

CREATE TABLE sign_in_links (
    code_hash   bytea PRIMARY KEY,
    token_id    uuid NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX sign_in_links_token ON sign_in_links(token_id);
