//! `astreinte drill`: the command line of the night drill.
//!
//! - `astreinte drill SCENARIO.toml --check`: reads the scenario, says what night it plays.
//! - `astreinte drill SCENARIO.toml --since TIME --console URL --token TOKEN`: the report of a
//!   night that started at TIME (wall clock, RFC 3339), read from the console's API: the table
//!   on the terminal, `--json` and `--svg` to files. Exit status 0 when the promise held, 1
//!   when a ticket missed its target or a call lost its ticket.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::observe::{trace_of, Console};
use super::sinks::Receipt;
use astreinte_core::drill::report::{CallTrace, Night, NightReport};
use astreinte_core::drill::Scenario;

/// Where the console is and how the drill signs in (`astreinte users token NAME`).
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// The engine's console, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub console: Option<String>,
    /// An API token (`astreinte users token NAME`); else ASTREINTE_DRILL_TOKEN.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ASTREINTE_DRILL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DrillCommand {
    /// The night to play (see drills/*.toml).
    pub scenario: PathBuf,
    /// Only read the scenario and say what night it is.
    #[arg(long)]
    pub check: bool,
    /// Report on the night that started at this time (RFC 3339) instead of playing one.
    #[arg(long, value_name = "TIME")]
    pub since: Option<DateTime<Utc>>,
    #[command(flatten)]
    pub console: ConsoleArgs,
    /// Write the report as JSON here.
    #[arg(long, value_name = "REPORT.json")]
    pub json: Option<PathBuf>,
    /// Draw the night as SVG here.
    #[arg(long, value_name = "NIGHT.svg")]
    pub svg: Option<PathBuf>,
}

impl DrillCommand {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let scenario = read_scenario(&self.scenario)?;
        if self.check {
            println!("{}", summary(&scenario));
            return Ok(ExitCode::SUCCESS);
        }
        let Some(since) = self.since else {
            anyhow::bail!(
                "playing a night needs --since for now: run the night, then \
                 `astreinte drill {} --since <when it started> --console URL --token TOKEN`",
                self.scenario.display()
            );
        };
        let console = console(&self.console)?;
        let report = observe_report(&scenario, &console, since, &[], &[]).await?;
        self.write(&report)
    }

    /// The table on stdout, JSON and SVG where asked; the exit status says whether the
    /// promise held.
    fn write(&self, report: &NightReport) -> anyhow::Result<ExitCode> {
        print!("{}", report.table());
        if let Some(path) = &self.json {
            let json = serde_json::to_string_pretty(report).context("the report as JSON")?;
            std::fs::write(path, json)
                .with_context(|| format!("writing the report to {}", path.display()))?;
        }
        if let Some(path) = &self.svg {
            std::fs::write(path, report.svg())
                .with_context(|| format!("writing the picture to {}", path.display()))?;
        }
        Ok(if report.promise_held {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}

/// The largest scenario read: a storm of 10,000 calls written out one by one fits.
const MAX_SCENARIO_BYTES: u64 = 4 << 20;

pub fn read_scenario(path: &std::path::Path) -> anyhow::Result<Scenario> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open the scenario {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_SCENARIO_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read the scenario {} as UTF-8 text", path.display()))?;
    if text.len() as u64 > MAX_SCENARIO_BYTES {
        anyhow::bail!(
            "{}: larger than {} MiB; a scenario writes many calls as [[bursts]]",
            path.display(),
            MAX_SCENARIO_BYTES >> 20
        );
    }
    Scenario::parse(&text).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))
}

fn console(args: &ConsoleArgs) -> anyhow::Result<Console> {
    let url = args
        .console
        .as_deref()
        .context("--console URL is needed: the engine's console, e.g. http://127.0.0.1:8080")?;
    let token = args.token.as_deref().context(
        "an API token is needed: --token or ASTREINTE_DRILL_TOKEN (astreinte users token NAME)",
    )?;
    Ok(Console::new(url, token)?)
}

/// What a scenario plays, in a few lines.
pub fn summary(s: &Scenario) -> String {
    let calls = s.calls();
    let night = &s.night;
    let wall = s.wall(night.length);
    format!(
        "{}: {} of night in {} of wall time (time ×{}), {} calls, {} technicians, {} faults, \
         {} SMTP and {} webhook outages",
        night.name,
        humantime::format_duration(night.length),
        humantime::format_duration(wall),
        night.time_scale,
        calls.len(),
        s.technicians.len(),
        s.faults.len(),
        s.smtp.len(),
        s.webhook.len(),
    )
}

/// The report of the night started at `start`: every ticket the engine opened since, joined
/// with what the sinks received and the calls the drill placed.
pub async fn observe_report(
    scenario: &Scenario,
    console: &Console,
    start: DateTime<Utc>,
    receipts: &[Receipt],
    calls: &[CallTrace],
) -> anyhow::Result<NightReport> {
    let tickets = console.tickets_since(start).await?;
    let traces: Vec<_> = tickets
        .iter()
        .filter_map(|t| trace_of(t, receipts))
        .collect();
    Ok(NightReport::build(
        Night::from_scenario(scenario, start),
        &traces,
        calls,
    ))
}
