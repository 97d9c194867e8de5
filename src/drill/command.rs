//! `astreinte drill`: the command line of the night drill.
//!
//! - `astreinte drill SCENARIO.toml --check`: reads the scenario, says what night it plays.
//! - `astreinte drill SCENARIO.toml --target HOST:PORT --console URL --token TOKEN`: plays the
//!   night against the engine at HOST:PORT (a node, or Kamailio): callers, the technicians'
//!   phones and the trunk's customers on `--phones`, the mail and webhook sinks on `--mail`
//!   and `--webhook`, the faults through `--fault KEY=COMMAND`; then reports.
//! - `astreinte drill SCENARIO.toml --since TIME --console URL --token TOKEN`: the report of a
//!   night that started at TIME (wall clock, RFC 3339), read from the console's API: the table
//!   on the terminal, `--json` and `--svg` to files. Exit status 0 when the promise held, 1
//!   when a ticket missed its target or a call lost its ticket.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::faults::FaultCommands;
use super::observe::{trace_of, Console};
use super::play::{play, Stage};
use super::roles::{default_speech, load_clip};
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
    #[arg(long, value_name = "TIME", conflicts_with = "target")]
    pub since: Option<DateTime<Utc>>,
    /// Play the night against this engine (SIP, host:port: a node or Kamailio).
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// The number the callers dial.
    #[arg(long, default_value = "611")]
    pub number: String,
    /// The drill's own address: its phones, sinks and callers listen here, and it is written
    /// in SDP (a concrete address the engine reaches, not 0.0.0.0).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub listen: std::net::IpAddr,
    /// SIP port of the technicians' phones and the trunk's customers: the roster's phones are
    /// sip:NUMBER@IP:PORT and `[sip.outbound] proxy` is sip:IP:PORT.
    #[arg(long, value_name = "PORT", default_value_t = 5070)]
    pub phones: u16,
    /// SMTP port of the mail sink (`[paging.smtp] url = "smtp://IP:PORT"`).
    #[arg(long, value_name = "PORT", default_value_t = 2525)]
    pub mail: u16,
    /// HTTP port of the webhook sink (`[[paging.webhooks]] url = "http://IP:PORT/…"`).
    #[arg(long, value_name = "PORT", default_value_t = 8025)]
    pub webhook: u16,
    /// How to cause a fault of the scenario: kill-a, kill-b, stop-a, stop-b,
    /// restart-postgres, each `KEY=COMMAND` (run with sh -c).
    #[arg(long = "fault", value_name = "KEY=COMMAND")]
    pub faults: Vec<String>,
    /// Networks the engine's nodes call from (allowed to ring the drill's phones).
    #[arg(long = "engine-net", value_name = "CIDR", default_values_t = ["127.0.0.0/8".to_string()])]
    pub engine_nets: Vec<String>,
    /// What the callers say after the tone (WAV, 8 kHz mono 16-bit); default: a bundled prompt.
    #[arg(long, value_name = "WAV")]
    pub speech: Option<PathBuf>,
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
            for t in &scenario.technicians {
                println!(
                    "  technician {} (level {}): the roster's phone is sip:{}@{}:{}",
                    t.id, t.level, t.number, self.listen, self.phones
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        let console = console(&self.console)?;
        // Before a night is played, not after: an unreachable console or a bad token would
        // otherwise be found only when the report is made.
        let role = console.preflight().await?;
        let may_post = role == "admin";
        if !may_post {
            eprintln!(
                "astreinte drill: the token's user is a {role}: the report will be printed and \
                 written, not posted to the console (an admin's token posts it)"
            );
        }
        if let Some(since) = self.since {
            let report = observe_report(&scenario, &console, since, &[], &[]).await?;
            if may_post {
                publish(&console, &report).await;
            }
            return self.write(&report);
        }
        let Some(target) = self.target.clone() else {
            anyhow::bail!(
                "say what to do: --target HOST:PORT plays the night against an engine, \
                 --since TIME reports on one already played, --check reads the scenario"
            );
        };
        let faults = FaultCommands::parse(&self.faults).map_err(anyhow::Error::msg)?;
        faults.check(&scenario).map_err(anyhow::Error::msg)?;
        let speech = match &self.speech {
            Some(p) => load_clip(p)?,
            None => default_speech(std::path::Path::new("prompts")).context(
                "the callers' default speech is prompts/en/greeting.wav: run from the \
                 repository or give --speech WAV",
            )?,
        };
        let stage = Stage {
            target,
            number: self.number.clone(),
            ip: self.listen,
            phones_port: self.phones,
            mail_port: self.mail,
            webhook_port: self.webhook,
            speech: speech.into(),
            engine_nets: self.engine_nets.clone(),
        };
        eprintln!("{}", summary(&scenario));
        let night = play(&scenario, &stage, &faults).await?;
        for f in &night.faults {
            eprintln!(
                "fault {} at {}: {} ({:?})",
                f.fault,
                f.at.format("%H:%M:%S"),
                f.command,
                f.outcome
            );
        }
        // Every target must have passed before a ticket is judged: wait for the latest one
        // (bounded: the longest target after the night, plus a little).
        let bound = Utc::now()
            + chrono::Duration::from_std(scenario.wall(scenario.night.s2_target))
                .unwrap_or_default()
            + chrono::Duration::seconds(10);
        loop {
            let tickets = console.tickets_since(night.start).await?;
            let latest = tickets.iter().map(|t| t.callback_due_at).max();
            let now = Utc::now();
            match latest {
                Some(due) if due + chrono::Duration::seconds(2) > now && now < bound => {
                    let wait = (due + chrono::Duration::seconds(2) - now)
                        .min(bound - now)
                        .to_std()
                        .unwrap_or_default();
                    tokio::time::sleep(wait).await;
                }
                _ => break,
            }
        }
        let tickets = console.tickets_since(night.start).await?;
        let by_caller: Vec<(String, String, DateTime<Utc>)> = tickets
            .iter()
            .map(|t| (t.number.clone(), t.caller.clone(), t.created_at))
            .collect();
        let calls = night.call_traces(&by_caller);
        let receipts = night.receipts();
        let traces: Vec<_> = tickets
            .iter()
            .filter_map(|t| trace_of(t, &receipts))
            .map(|mut t| {
                // The engine dates a ticket from the call's start; the caller knows when its
                // message ended.
                if let Some(end) = night.voicemail_end_of(&calls, &t.number) {
                    t.voicemail_end = end;
                }
                t
            })
            .collect();
        let report = NightReport::build(
            Night::from_scenario(&scenario, night.start),
            &traces,
            &calls,
        );
        night.shutdown().await;
        if may_post {
            publish(&console, &report).await;
        }
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

/// Posts the report for the console's Drill page; a refusal is said, not fatal: the report is
/// still printed and written.
async fn publish(console: &Console, report: &NightReport) {
    match console.post_report(report).await {
        Ok(()) => eprintln!("astreinte drill: the report is on the console's Drill page"),
        Err(e) => eprintln!(
            "astreinte drill: the report is not on the console (an admin's token posts it): {e}"
        ),
    }
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
