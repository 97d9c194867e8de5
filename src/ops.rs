//! Operator subcommands beside `serve`: migrations, schedule checks, tickets and SLA reports.

use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum OpsCommand {
    /// Apply the database migrations and exit.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

impl OpsCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            OpsCommand::Migrate { .. } => anyhow::bail!("migrations are not built yet"),
        }
    }
}
