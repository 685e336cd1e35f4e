//! Where the CLI's server is and whom it acts for. Every command talks to the server through the
//! one client, `crucible_worker::client::ServerClient`.

use anyhow::{Context, Result};
use crucible_worker::client::ServerClient;

/// Server address and token, shared by every subcommand that talks to a server.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// Crucible server URL.
    #[arg(long, env = "CRUCIBLE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Team API token (`crucible token create`).
    #[arg(long, env = "CRUCIBLE_TOKEN")]
    pub token: Option<String>,
}

impl ServerArgs {
    /// A client acting with the token when one is given.
    pub fn client(&self) -> ServerClient {
        ServerClient::new(&self.server, self.token.as_deref())
    }

    /// A client for a command that writes: the token is required.
    pub fn writer(&self) -> Result<ServerClient> {
        let token = self
            .token
            .as_deref()
            .context("this command writes to the server: pass --token or set CRUCIBLE_TOKEN")?;
        Ok(ServerClient::new(&self.server, Some(token)))
    }
}
