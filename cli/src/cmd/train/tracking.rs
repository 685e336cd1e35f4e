//! A local run tracked on a server like a job's run: created `running` in a project found or
//! created by name, fed through the worker's reporters (`crucible_worker::report`), closed
//! `finished` or `failed`. Every call goes through the one client.

use anyhow::Context;
use crucible_types::{CreateRun, Run, RunKind, RunStatus, UpdateRun, config_params};
use crucible_worker::client::ServerClient;
use serde::Serialize;

use super::TrackingArgs;

/// A run on the tracking server and the client that feeds it.
pub struct TrackedRun {
    pub client: ServerClient,
    pub run: Run,
}

impl TrackedRun {
    /// Creates the run when `args` name a server; `extra` params join the config's own.
    pub fn start(
        args: &TrackingArgs,
        name: &str,
        kind: RunKind,
        config: &impl Serialize,
        extra: &[(&str, String)],
    ) -> anyhow::Result<Option<Self>> {
        let (Some(server), Some(token)) = (&args.server, &args.token) else {
            return Ok(None);
        };
        let client = ServerClient::new(server, Some(token));
        let project = client
            .project(&args.project)
            .with_context(|| format!("project {:?} on {server}", args.project))?;
        let mut params = config_params(config);
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let run = client.create_run(&CreateRun {
            project_id: project.id,
            name: Some(name.to_string()),
            kind: Some(kind),
            status: Some(RunStatus::Running),
            params,
            config: serde_json::to_value(config).ok(),
            command: Some(std::env::args().collect::<Vec<_>>().join(" ")),
            ..CreateRun::default()
        })?;
        eprintln!("tracking run {}", run.id);
        Ok(Some(Self { client, run }))
    }

    /// Marks the run finished or failed.
    pub fn finish(&self, ok: bool) -> anyhow::Result<()> {
        let status = if ok {
            RunStatus::Finished
        } else {
            RunStatus::Failed
        };
        self.client.update_run(
            self.run.id,
            &UpdateRun {
                status: Some(status),
                ..UpdateRun::default()
            },
        )?;
        Ok(())
    }
}
