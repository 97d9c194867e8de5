//! `astreinte tickets`: list, show, fetch a voicemail, and move a ticket along (acknowledge,
//! called back, resolve, cancel, reclassify).

use std::path::Path;

use anyhow::{bail, Context};
use chrono::Utc;
use chrono_tz::Tz;
use serde_json::json;

use super::{load, local, schedule_of, store_of, tracking_number, ConfigArg, TicketsCmd, Update};
use crate::store::{
    number, Action, Event, ListFilter, PageJob, Ticket, VoicemailAudioInfo, VoicemailWav, WavSource,
};
use crate::triage::Severity;

pub(super) async fn run_tickets(cmd: TicketsCmd) -> anyhow::Result<()> {
    match cmd {
        TicketsCmd::List {
            json,
            open,
            limit,
            cfg,
        } => list(json, open, limit, &cfg).await,
        TicketsCmd::Show {
            number: n,
            json,
            cfg,
        } => show(&n, json, &cfg).await,
        TicketsCmd::Voicemail {
            number: n,
            out,
            cfg,
        } => write_voicemail(&n, &out, &cfg).await,
        TicketsCmd::Ack(u) => update(u, Action::Acknowledge).await,
        TicketsCmd::Callback(u) => update(u, Action::CalledBack).await,
        TicketsCmd::Resolve(u) => update(u, Action::Resolve).await,
        TicketsCmd::Cancel(u) => update(u, Action::Cancel).await,
        TicketsCmd::Reclassify {
            update: u,
            severity,
        } => reclassify(u, severity).await,
    }
}

/// `tickets list`: newest first, or the open ones most urgent first.
async fn list(json: bool, open: bool, limit: i64, cfg: &ConfigArg) -> anyhow::Result<()> {
    let config = load(cfg)?;
    let tz = schedule_of(&config)?.timezone();
    let store = store_of(&config).await?;
    let tickets = store
        .list_tickets(&ListFilter {
            open_only: open,
            limit: Some(limit),
        })
        .await?;
    if json {
        println!("{}", serde_json::to_string(&tickets)?);
    } else {
        print_list(&tickets, tz);
    }
    Ok(())
}

fn print_list(tickets: &[Ticket], tz: Tz) {
    println!(
        "{:<9}  {:<3}  {:<12}  {:<20}  {:<20}  {:<14}  ACCOUNT",
        "NUMBER", "SEV", "STATUS", "CREATED", "CALLBACK DUE", "CALLER"
    );
    for t in tickets {
        println!(
            "{:<9}  {:<3}  {:<12}  {:<20}  {:<20}  {:<14}  {}",
            number::grouped(&t.number),
            t.severity,
            t.status,
            local(t.created_at, tz),
            local(t.callback_due_at, tz),
            t.caller,
            drill_or(t, t.account_code.as_deref().unwrap_or("-"))
        );
    }
}

/// `text`, after "DRILL ×60" for a drill ticket.
fn drill_or(t: &Ticket, text: &str) -> String {
    if t.time_scale.is_drill() {
        format!("DRILL {} {text}", t.time_scale)
    } else {
        text.to_string()
    }
}

/// A ticket with what the CLI shows beside it.
struct TicketFile {
    ticket: Ticket,
    events: Vec<Event>,
    jobs: Vec<PageJob>,
    audio: Option<VoicemailAudioInfo>,
}

/// `tickets show`: one ticket, its history and its page jobs.
async fn show(n: &str, json: bool, cfg: &ConfigArg) -> anyhow::Result<()> {
    let n = tracking_number(n)?;
    let config = load(cfg)?;
    let tz = schedule_of(&config)?.timezone();
    let store = store_of(&config).await?;
    let ticket = store.ticket(&n).await?;
    let file = TicketFile {
        events: store.events(&n).await?,
        jobs: store.page_jobs(&n).await?,
        audio: store.voicemail_audio_info(ticket.id).await?,
        ticket,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&file.to_json()?)?);
        return Ok(());
    }
    file.print_ticket(tz);
    file.print_history(tz);
    file.print_page_jobs(tz);
    Ok(())
}

impl TicketFile {
    fn to_json(&self) -> anyhow::Result<serde_json::Value> {
        let t = &self.ticket;
        let mut v = serde_json::to_value(t)?;
        v["voicemail_audio"] = serde_json::to_value(&self.audio)?;
        v["events"] = serde_json::to_value(&self.events)?;
        v["page_jobs"] = serde_json::to_value(&self.jobs)?;
        v["callback_target_met"] = json!(t.called_back_at.map(|c| c <= t.callback_due_at));
        Ok(v)
    }

    /// Who called, when it is due, the voicemail, the answers and why this severity.
    fn print_ticket(&self, tz: Tz) {
        let t = &self.ticket;
        println!(
            "ticket {} — {} {}",
            number::grouped(&t.number),
            t.severity,
            t.status
        );
        if t.time_scale.is_drill() {
            println!(
                "  DRILL {}: a drill ticket, its targets and ladder ran {} times faster; not a customer",
                t.time_scale,
                t.time_scale.factor()
            );
        }
        println!(
            "  caller {} (call back {}), language {}",
            t.caller, t.callback_number, t.language
        );
        if let Some(code) = &t.account_code {
            println!("  account {code} — {}", t.company.as_deref().unwrap_or(""));
        }
        println!("  created {}", local(t.created_at, tz));
        println!(
            "  callback due {}, resolution due {}",
            local(t.callback_due_at, tz),
            local(t.resolution_due_at, tz)
        );
        if let Some(p) = &t.voicemail_path {
            self.print_voicemail(p);
        }
        for (q, a) in &t.answers {
            println!("  {q}: {a}");
        }
        println!(
            "  why {}: {}",
            t.severity,
            t.classification_reasons.join("; ")
        );
    }

    fn print_voicemail(&self, path: &str) {
        let t = &self.ticket;
        println!(
            "  voicemail {path} ({:.1} s, {})",
            t.voicemail_seconds.unwrap_or(0.0),
            if t.speech_detected == Some(true) {
                "speech"
            } else {
                "no speech detected"
            }
        );
        match &self.audio {
            Some(a) => println!(
                "  audio in the store: {} bytes, sha256 {} (astreinte tickets voicemail {} --out FILE)",
                a.bytes, a.sha256, t.number
            ),
            None => println!("  audio not in the store: only the file above has it"),
        }
    }

    fn print_history(&self, tz: Tz) {
        println!("history:");
        for e in &self.events {
            let change = match (
                &e.from_status,
                &e.to_status,
                &e.from_severity,
                &e.to_severity,
            ) {
                (_, _, Some(a), Some(b)) => format!(" {a} → {b}"),
                (Some(a), Some(b), _, _) => format!(" {a} → {b}"),
                _ => String::new(),
            };
            println!(
                "  {}  {}{} by {}{}",
                local(e.at, tz),
                e.kind,
                change,
                e.actor,
                e.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
    }

    fn print_page_jobs(&self, tz: Tz) {
        if self.jobs.is_empty() {
            return;
        }
        println!("page jobs:");
        for j in &self.jobs {
            println!(
                "  #{} {} → {} {:?} run at {} ({} attempt(s))",
                j.id,
                j.channel,
                j.target,
                j.state,
                local(j.run_at, tz),
                j.attempts
            );
        }
    }
}

/// `tickets voicemail`: the recording from the store (any node), else from this node's file,
/// to a file or standard output.
async fn write_voicemail(n: &str, out: &Path, cfg: &ConfigArg) -> anyhow::Result<()> {
    let n = tracking_number(n)?;
    let config = load(cfg)?;
    let store = store_of(&config).await?;
    let t = store.ticket(&n).await?;
    let found = store
        .voicemail_wav(
            &n,
            t.id,
            t.voicemail_path.as_deref(),
            crate::store::MAX_VOICEMAIL_BYTES,
        )
        .await;
    let (wav, from) = voicemail_or_why_not(found, &t)?;
    if out.as_os_str() == "-" {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&wav)
            .context("writing to standard output")?;
        stdout.flush().context("writing to standard output")?;
        eprintln!("{} bytes from {from}", wav.len());
    } else {
        std::fs::write(out, &wav).with_context(|| format!("writing {}", out.display()))?;
        println!(
            "ticket {}: voicemail written to {} ({} bytes, from {from})",
            number::grouped(&t.number),
            out.display(),
            wav.len()
        );
    }
    Ok(())
}

/// The WAV and where it came from, or an error that says why there is none here.
fn voicemail_or_why_not(found: VoicemailWav, t: &Ticket) -> anyhow::Result<(Vec<u8>, String)> {
    let n = &t.number;
    match found {
        VoicemailWav::Found { wav, source } => Ok((
            wav,
            match source {
                WavSource::Store => "the store".to_string(),
                WavSource::LocalFile => t.voicemail_path.clone().unwrap_or_default(),
            },
        )),
        VoicemailWav::NoVoicemail => bail!("ticket {n} has no voicemail"),
        VoicemailWav::Gone => bail!(
            "the voicemail of ticket {n} is not in the store, and {} is not on this machine \
             (run this on the node that recorded it)",
            t.voicemail_path.as_deref().unwrap_or_default()
        ),
        VoicemailWav::TooLarge { bytes } => {
            bail!("the voicemail of ticket {n} is too large ({bytes} bytes)")
        }
        VoicemailWav::Unreadable { why } => {
            bail!("the voicemail of ticket {n} cannot be read now: {why}")
        }
    }
}

/// `tickets reclassify`: a new severity, with its reason, and deadlines to match.
async fn reclassify(u: Update, severity: Severity) -> anyhow::Result<()> {
    let n = tracking_number(&u.number)?;
    let Some(reason) = u.reason.as_deref().filter(|r| !r.trim().is_empty()) else {
        bail!("reclassify needs --reason TEXT: every reclassification keeps its reason");
    };
    let config = load(&u.cfg)?;
    let s = schedule_of(&config)?;
    let store = store_of(&config).await?;
    let t = store.ticket(&n).await?;
    // Deadlines follow the new severity, counted from when the customer called.
    let due = s.due(severity, t.created_at);
    let t = store
        .reclassify(&n, severity, due, &u.by, reason, Utc::now())
        .await?;
    println!(
        "ticket {} is now {} (callback due {})",
        number::grouped(&t.number),
        t.severity,
        local(t.callback_due_at, s.timezone())
    );
    Ok(())
}

/// `tickets ack|callback|resolve|cancel`: one step of the ticket's life.
async fn update(u: Update, action: Action) -> anyhow::Result<()> {
    let n = tracking_number(&u.number)?;
    let config = load(&u.cfg)?;
    let store = store_of(&config).await?;
    let t = store
        .transition(&n, action, &u.by, u.reason.as_deref(), Utc::now())
        .await?;
    println!("ticket {} is now {}", number::grouped(&t.number), t.status);
    Ok(())
}
