//! Wires the rooms together for `serve`: SIP endpoint, call flows, media, store.

use crate::config::Config;

pub async fn serve(_config: Config) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
