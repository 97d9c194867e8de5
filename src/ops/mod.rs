//! Operator subcommands beside `serve`: migrations, schedule checks, tickets, SLA reports and
//! account imports. This is the CLI edge: errors become `anyhow` with a message for a human.

use std::path::PathBuf;

use anyhow::{bail, Context};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::json;

/// Everything the CLI prints goes through [`crate::printable::for_terminal`]: a caller ID,
/// a company name or a note may hold an escape sequence or a carriage return, and must not
/// recolour or rewrite the admin's terminal. (Shadows `std`'s macros in `ops` and below.)
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", $crate::printable::for_terminal(&line));
    }};
}

macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{}", $crate::printable::for_terminal(&line));
    }};
}

macro_rules! eprint {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let mut err = std::io::stderr();
        let _ = write!(err, "{}", $crate::printable::for_terminal(&line));
        let _ = err.flush();
    }};
}

mod oncall;
mod tickets;
mod users;

use crate::config::Config;
use crate::schedule::{sla, Schedule};
use crate::store::{number, Store};
use crate::triage::Severity;

#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// Configuration file (default: config/astreinte.toml, else the embedded defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum OpsCommand {
    /// Apply the database migrations and exit.
    Migrate {
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Business hours: is the line open at a given time, and why.
    Schedule {
        #[command(subcommand)]
        cmd: ScheduleCmd,
    },
    /// List, show and update tickets.
    Tickets {
        #[command(subcommand)]
        cmd: TicketsCmd,
    },
    /// SLA clocks: callbacks within target per severity.
    Sla {
        #[command(subcommand)]
        cmd: SlaCmd,
    },
    /// Try the severity rules on an example, e.g. after editing a copy of the rules file.
    Triage {
        #[command(subcommand)]
        cmd: TriageCmd,
    },
    /// Customer accounts (registered numbers and contacts).
    Accounts {
        #[command(subcommand)]
        cmd: AccountsCmd,
    },
    /// The incident announcement callers hear before the menu (every node, every new call).
    Announce {
        #[command(subcommand)]
        cmd: AnnounceCmd,
    },
    /// Who is on call now and next, and overrides (someone covers a rotation for a while).
    Oncall {
        #[command(subcommand)]
        cmd: oncall::OncallCmd,
    },
    /// People who can be paged (seeded from [[paging.people]] at each start).
    People {
        #[command(subcommand)]
        cmd: oncall::PeopleCmd,
    },
    /// Console users (password on standard input) and API tokens for scripts.
    Users {
        #[command(subcommand)]
        cmd: users::UsersCmd,
    },
    /// The audit log: who changed what, when, before and after (newest first).
    Audit {
        #[command(flatten)]
        args: users::AuditArgs,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum AnnounceCmd {
    /// Announce a major incident; spoken with the prompts' voice (espeak-ng and sox), or
    /// from WAV files.
    Set {
        /// investigating, identified or monitoring
        #[arg(long)]
        phase: String,
        /// What French callers hear.
        #[arg(long)]
        fr: String,
        /// What English callers hear.
        #[arg(long)]
        en: String,
        /// A recording to play instead of the spoken French text.
        #[arg(long)]
        fr_wav: Option<PathBuf>,
        /// A recording to play instead of the spoken English text.
        #[arg(long)]
        en_wav: Option<PathBuf>,
        /// Who sets it (for the record).
        #[arg(long, default_value = "admin")]
        by: String,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// No announcement any more.
    Clear {
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// The current announcement.
    Show {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cfg: ConfigArg,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCmd {
    /// The holiday closures of YEAR (legal dates and observed weekdays, plus admin dates).
    Holidays {
        year: i32,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Open or closed at TIME (RFC 3339, e.g. 2025-12-24T17:30:00-05:00, or "now"), why, and
    /// when that changes next.
    At {
        time: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cfg: ConfigArg,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum TriageCmd {
    /// Classify an example: the key pressed in the emergency menu and/or a transcript.
    Check {
        /// Rules file (default: the embedded config/triage-rules.toml).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Key pressed in the emergency menu.
        #[arg(long)]
        key: Option<char>,
        /// What the caller said.
        #[arg(long)]
        transcript: Option<String>,
        /// The voicemail held no speech.
        #[arg(long)]
        no_speech: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct Update {
    /// Tracking number (spaces and dashes allowed: "4821 0937").
    pub number: String,
    /// Who does it (recorded in the ticket's history).
    #[arg(long)]
    pub by: String,
    /// Why (recorded in the ticket's history).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub cfg: ConfigArg,
}

#[derive(Debug, clap::Subcommand)]
pub enum TicketsCmd {
    /// Tickets, newest first; --open: unfinished ones, most urgent callback first.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        open: bool,
        /// At most this many (default 1000).
        #[arg(long, default_value_t = 1000)]
        limit: i64,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// One ticket with its history and page jobs.
    Show {
        number: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Write a ticket's voicemail (WAV) to a file, from the store (any node), else from the
    /// file it was recorded to on this node.
    Voicemail {
        number: String,
        /// Where to write the WAV ("-": standard output).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// A technician has taken the ticket in charge (stops pending pages).
    Ack(Update),
    /// The customer has been called back.
    Callback(Update),
    /// The problem is solved.
    Resolve(Update),
    /// Not a real request (wrong number, duplicate...).
    Cancel(Update),
    /// Change the severity (up or down); --severity and --reason are required.
    Reclassify {
        #[command(flatten)]
        update: Update,
        #[arg(long)]
        severity: Severity,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum SlaCmd {
    /// Per severity: tickets, callbacks within target, median and p90 time to callback, misses.
    Report {
        /// First day (YYYY-MM-DD, local) or instant (RFC 3339); default: 30 days ago.
        #[arg(long)]
        from: Option<String>,
        /// Day after the last (YYYY-MM-DD, local, exclusive) or instant; default: now.
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cfg: ConfigArg,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum AccountsCmd {
    /// Import (create or replace) accounts from a CSV file with the header
    /// account,company,address,numbers,admin_name,admin_phone,admin_email,technical_name,
    /// technical_phone,technical_email,billing_name,billing_phone,billing_email
    /// (numbers separated by ";").
    Import {
        file: PathBuf,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// One account with its numbers and contacts.
    Show {
        code: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cfg: ConfigArg,
    },
}

fn load(cfg: &ConfigArg) -> anyhow::Result<Config> {
    let (config, _) = Config::load(cfg.config.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(config)
}

fn schedule_of(config: &Config) -> anyhow::Result<Schedule> {
    Schedule::from_config(&config.schedule).map_err(|errs| {
        anyhow::anyhow!(
            "{}",
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

async fn store_of(config: &Config) -> anyhow::Result<Store> {
    Store::connect(&config.store)
        .await
        .with_context(|| format!("cannot open the store at {}", config.store.url))
}

/// "4821 0937" → "48210937", refusing a number whose check digit is wrong.
fn tracking_number(s: &str) -> anyhow::Result<String> {
    let n: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if !number::is_valid(&n) {
        bail!("\"{s}\" is not a tracking number (8 digits with a check digit, e.g. 4821 0937)");
    }
    Ok(n)
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

fn parse_instant(s: &str, tz: Tz) -> anyhow::Result<DateTime<Utc>> {
    if s == "now" {
        return Ok(Utc::now());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = tz
            .from_local_datetime(&d.and_time(NaiveTime::MIN))
            .earliest()
        {
            return Ok(t.with_timezone(&Utc));
        }
    }
    bail!("\"{s}\" is neither RFC 3339 (2025-12-24T17:30:00-05:00) nor a date (2025-12-24)")
}

impl OpsCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            OpsCommand::Migrate { cfg } => migrate(&cfg).await,
            OpsCommand::Schedule {
                cmd: ScheduleCmd::At { time, json, cfg },
            } => open_at(&time, json, &cfg),
            OpsCommand::Schedule {
                cmd: ScheduleCmd::Holidays { year, json, cfg },
            } => holidays(year, json, &cfg),
            OpsCommand::Triage {
                cmd:
                    TriageCmd::Check {
                        rules,
                        key,
                        transcript,
                        no_speech,
                        json,
                    },
            } => check_triage(rules, key, transcript.as_deref(), no_speech, json),
            OpsCommand::Tickets { cmd } => tickets::run_tickets(cmd).await,
            OpsCommand::Announce { cmd } => run_announce(cmd).await,
            OpsCommand::Oncall { cmd } => oncall::run_oncall(cmd).await,
            OpsCommand::People { cmd } => oncall::run_people(cmd).await,
            OpsCommand::Users { cmd } => users::run_users(cmd).await,
            OpsCommand::Audit { args } => users::run_audit(args).await,
            OpsCommand::Sla {
                cmd:
                    SlaCmd::Report {
                        from,
                        to,
                        json,
                        cfg,
                    },
            } => sla_report(from.as_deref(), to.as_deref(), json, &cfg).await,
            OpsCommand::Accounts { cmd } => match cmd {
                AccountsCmd::Import { file, cfg } => import_accounts(&file, &cfg).await,
                AccountsCmd::Show { code, json, cfg } => show_account(&code, json, &cfg).await,
            },
        }
    }
}

/// `migrate`: the pending migrations of the configured store.
async fn migrate(cfg: &ConfigArg) -> anyhow::Result<()> {
    let config = load(cfg)?;
    let store = Store::open(&config.store)
        .await
        .with_context(|| format!("cannot open the store at {}", config.store.url))?;
    let n = store.migrate().await?;
    println!("{}: {n} migration(s) applied", store.backend());
    Ok(())
}

/// `schedule at`: open or closed at `time`, why, and when that changes next.
fn open_at(time: &str, json: bool, cfg: &ConfigArg) -> anyhow::Result<()> {
    let config = load(cfg)?;
    let s = schedule_of(&config)?;
    let tz = s.timezone();
    let t = if time == "now" {
        Utc::now()
    } else {
        DateTime::parse_from_rfc3339(time)
            .with_context(|| {
                format!("\"{time}\" is not an RFC 3339 time (e.g. 2025-12-24T17:30:00-05:00)")
            })?
            .with_timezone(&Utc)
    };
    let o = s.is_open(t);
    if json {
        let v = json!({
            "time": t,
            "local": t.with_timezone(&tz).to_rfc3339(),
            "timezone": tz.name(),
            "open": o.open,
            "reason": o.reason.to_string(),
            "reason_detail": o.reason,
            "next_change": o.next_change,
            "next_change_local": o.next_change.map(|c| c.with_timezone(&tz).to_rfc3339()),
            "maintenance": o.maintenance,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{}: {} ({})",
        local(t, tz),
        if o.open { "OPEN" } else { "CLOSED" },
        o.reason
    );
    match o.next_change {
        Some(c) => println!(
            "{} at {}",
            if o.open { "closes" } else { "opens" },
            local(c, tz)
        ),
        None => println!("no change within two years"),
    }
    if let Some(m) = o.maintenance {
        println!("planned maintenance window in progress: {m}");
    }
    Ok(())
}

/// `schedule holidays`: the closed days of `year`.
fn holidays(year: i32, json: bool, cfg: &ConfigArg) -> anyhow::Result<()> {
    let config = load(cfg)?;
    let s = schedule_of(&config)?;
    let days = s.holidays_in(year);
    if json {
        let v: Vec<_> = days
            .iter()
            .map(|(d, name, observed)| json!({ "date": d, "name": name, "observed": observed }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    for (d, name, observed) in days {
        println!(
            "{} {}  {name}{}",
            d,
            d.format("%a"),
            if observed { " (observed)" } else { "" }
        );
    }
    Ok(())
}

/// `triage check`: the severity the rules give an example, and why.
fn check_triage(
    rules: Option<PathBuf>,
    key: Option<char>,
    transcript: Option<&str>,
    no_speech: bool,
    json: bool,
) -> anyhow::Result<()> {
    let t = crate::triage::Triage::from_config(
        &crate::triage::TriageConfig { rules },
        crate::config::read_rules_file,
    )?;
    let c = t.classify(&crate::triage::TriageInput {
        keypress: key,
        speech_detected: no_speech.then_some(false),
        transcript,
        ..Default::default()
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(());
    }
    println!("{}", c.severity);
    for r in &c.reasons {
        println!("  {r}");
    }
    Ok(())
}

/// `sla report`: callbacks within target per severity over a period (default: 30 days).
async fn sla_report(
    from: Option<&str>,
    to: Option<&str>,
    json: bool,
    cfg: &ConfigArg,
) -> anyhow::Result<()> {
    let config = load(cfg)?;
    let s = schedule_of(&config)?;
    let tz = s.timezone();
    let now = Utc::now();
    let to = match to {
        Some(t) => parse_instant(t, tz)?,
        None => now,
    };
    let from = match from {
        Some(f) => parse_instant(f, tz)?,
        None => to - Duration::days(30),
    };
    if from >= to {
        bail!("--from must be before --to");
    }
    let store = store_of(&config).await?;
    let rows = store.sla_tickets(from, to).await?;
    let report = sla::report(&rows, now);
    if json {
        let v = json!({ "from": from, "to": to, "generated_at": now, "severities": report });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("SLA report {} → {}", local(from, tz), local(to, tz));
    for r in &report {
        print_severity_line(r, tz);
    }
    Ok(())
}

/// One severity of the SLA report, and its misses.
fn print_severity_line(r: &sla::SeverityReport, tz: Tz) {
    let m = |v: Option<f64>| {
        v.map(|x| format!("{x:.1} min"))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "{}: {} ticket(s), {} called back, {} within target, median {}, p90 {}, {} miss(es)",
        r.severity,
        r.tickets,
        r.called_back,
        r.within_target,
        m(r.median_minutes_to_callback),
        m(r.p90_minutes_to_callback),
        r.misses.len()
    );
    for miss in &r.misses {
        println!(
            "  miss {} due {} {}",
            number::grouped(&miss.number),
            local(miss.callback_due_at, tz),
            match miss.called_back_at {
                Some(c) => format!(
                    "called back {} ({} min late)",
                    local(c, tz),
                    miss.late_minutes
                ),
                None => format!("not called back ({} min late)", miss.late_minutes),
            }
        );
    }
}

/// `accounts import`: create or replace the accounts of a CSV file.
async fn import_accounts(file: &std::path::Path, cfg: &ConfigArg) -> anyhow::Result<()> {
    let config = load(cfg)?;
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let store = store_of(&config).await?;
    let n = store
        .import_accounts_csv(f, Utc::now())
        .await
        .with_context(|| format!("{}: nothing imported", file.display()))?;
    println!("{n} account(s) imported from {}", file.display());
    Ok(())
}

/// `accounts show`: one account with its numbers and contacts.
async fn show_account(code: &str, json: bool, cfg: &ConfigArg) -> anyhow::Result<()> {
    let config = load(cfg)?;
    let store = store_of(&config).await?;
    let Some(a) = store.account(code).await? else {
        bail!("no account {code}");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&a)?);
        return Ok(());
    }
    println!(
        "{} — {}\n  address: {}\n  numbers: {}",
        a.code,
        a.company,
        a.address,
        a.numbers.join(", ")
    );
    for c in &a.contacts {
        println!("  {}: {} {} {}", c.role, c.name, c.phone, c.email);
    }
    Ok(())
}

async fn run_announce(cmd: AnnounceCmd) -> anyhow::Result<()> {
    match cmd {
        AnnounceCmd::Set {
            phase,
            fr,
            en,
            fr_wav,
            en_wav,
            by,
            cfg,
        } => {
            if !crate::store::announcements::PHASES.contains(&phase.as_str()) {
                bail!("--phase \"{phase}\" is not one of investigating, identified, monitoring");
            }
            if fr.trim().is_empty() || en.trim().is_empty() {
                bail!("--fr and --en must both say something (callers hear one or the other)");
            }
            let audio_fr = announcement_audio(&fr, "fr", fr_wav.as_deref())?;
            let audio_en = announcement_audio(&en, "en-us", en_wav.as_deref())?;
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            let id = store
                .set_announcement(&crate::store::NewAnnouncement {
                    phase: phase.clone(),
                    text_fr: fr,
                    text_en: en,
                    audio_fr,
                    audio_en,
                    set_by: by,
                    at: Utc::now(),
                })
                .await?;
            println!("announcement {id} ({phase}) set: new calls hear it before the menu");
            Ok(())
        }
        AnnounceCmd::Clear { cfg } => {
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            if store.clear_announcement(Utc::now()).await? {
                println!("announcement cleared");
            } else {
                println!("there was no announcement");
            }
            Ok(())
        }
        AnnounceCmd::Show { json, cfg } => {
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            let current = store.current_announcement().await?;
            if json {
                println!("{}", serde_json::to_string(&current)?);
            } else {
                match current {
                    Some(a) => println!(
                        "{} since {} (by {})\nfr: {}\nen: {}",
                        a.phase, a.set_at, a.set_by, a.text_fr, a.text_en
                    ),
                    None => println!("no announcement"),
                }
            }
            Ok(())
        }
    }
}

/// An announcement's audio (see `media::speech`).
fn announcement_audio(
    text: &str,
    voice: &str,
    wav: Option<&std::path::Path>,
) -> anyhow::Result<Vec<u8>> {
    crate::media::speech::announcement_wav(text, voice, wav)
        .map_err(|e| anyhow::anyhow!("{e} (or give --fr-wav/--en-wav)"))
}
