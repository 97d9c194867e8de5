//! `astreinte oncall` and `astreinte people`: the roster as the operators see it.

use anyhow::{bail, Context};
use chrono::Utc;
use serde_json::json;

use super::{load, local, parse_instant, schedule_of, store_of, ConfigArg};
use crate::paging::facts::PagedPerson;
use crate::paging::ladder::LadderPolicy;
use crate::paging::roster::{Override, Roster, Shift};
use crate::store::{PersonRow, Store};
use crate::triage::Severity;

#[derive(Debug, clap::Subcommand)]
pub enum OncallCmd {
    /// Who is on call now (and next) in each rotation, and who each ladder level pages.
    Now {
        /// Instead of now: RFC 3339 or a date.
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// PERSON covers ROTATION from --from to --to (e.g. a swap, a sick day).
    Override {
        #[arg(long)]
        rotation: String,
        #[arg(long)]
        person: String,
        /// RFC 3339 (2026-12-24T18:00:00-05:00), a date (local midnight) or "now".
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Who sets it (kept with it).
        #[arg(long, default_value = "cli")]
        by: String,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Overrides in force or to come.
    Overrides {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Removes an override by its id.
    RemoveOverride {
        id: i64,
        #[command(flatten)]
        cfg: ConfigArg,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum PeopleCmd {
    /// Everyone who can be paged.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Adds or changes a person (the config seeds people again at the next start).
    Set {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long, default_value = "fr")]
        language: String,
        #[command(flatten)]
        cfg: ConfigArg,
    },
}

async fn roster_of(
    config: &crate::config::Config,
    store: &Store,
    tz: chrono_tz::Tz,
) -> anyhow::Result<(Roster, Vec<Override>)> {
    let people: Vec<PagedPerson> = store.people().await?.into_iter().map(person).collect();
    let overrides = store
        .overrides(Utc::now() - chrono::Duration::days(400))
        .await?
        .into_iter()
        .map(|o| Override {
            id: o.id,
            rotation: o.rotation,
            person: o.person,
            from: o.starts_at,
            to: o.ends_at,
            reason: o.reason,
        })
        .collect();
    let roster = Roster::new(people, &config.paging.rotations, tz)
        .map_err(|e| anyhow::anyhow!("the roster: {e}"))?;
    Ok((roster, overrides))
}

fn person(p: PersonRow) -> PagedPerson {
    PagedPerson {
        id: p.id,
        name: p.name,
        language: p.language,
        phone: p.phone,
        email: p.email,
    }
}

fn shift_json(s: &Option<Shift>) -> serde_json::Value {
    match s {
        Some(s) => json!({
            "person": s.person.id, "name": s.person.name, "from": s.from, "until": s.until,
            "by_override": s.by_override, "override_id": s.override_id,
        }),
        None => serde_json::Value::Null,
    }
}

pub async fn run_oncall(cmd: OncallCmd) -> anyhow::Result<()> {
    match cmd {
        OncallCmd::Now { at, json, cfg } => {
            let config = load(&cfg)?;
            let schedule = schedule_of(&config)?;
            let tz = schedule.timezone();
            let now = match at {
                Some(a) => parse_instant(&a, tz)?,
                None => Utc::now(),
            };
            let store = store_of(&config).await?;
            crate::paging::service::seed_people(&store, &config.paging).await?;
            let (roster, overrides) = roster_of(&config, &store, tz).await?;
            let policy = LadderPolicy::from_config(
                &config.paging.ladder,
                &config.paging.in_hours,
                schedule.sla(),
            )
            .map_err(|e| anyhow::anyhow!("[paging.ladder]: {e}"))?;
            let mut rotations = Vec::new();
            for r in &config.paging.rotations {
                let now_shift = roster.on_call(&r.id, now, &overrides);
                let next = roster.next_on_call(&r.id, now, &overrides);
                rotations.push((r.id.clone(), now_shift, next));
            }
            let mut levels = Vec::new();
            for (i, slots) in policy.levels().iter().enumerate() {
                let people: Vec<PagedPerson> = slots
                    .iter()
                    .flat_map(|s| roster.resolve(s, now, &overrides))
                    .collect();
                let s1 = policy.offsets(Severity::S1).get(i).map(|d| d.num_minutes());
                let s2 = policy.offsets(Severity::S2).get(i).map(|d| d.num_minutes());
                levels.push((i + 1, slots.clone(), people, s1, s2));
            }
            if json {
                let v = json!({
                    "at": now,
                    "timezone": tz.name(),
                    "rotations": rotations.iter().map(|(id, cur, next)| json!({
                        "rotation": id, "now": shift_json(cur), "next": shift_json(next),
                    })).collect::<Vec<_>>(),
                    "ladder": levels.iter().map(|(n, slots, people, s1, s2)| json!({
                        "level": n, "slots": slots,
                        "people": people.iter().map(|p| json!({"id": p.id, "name": p.name, "phone": p.phone, "email": p.email})).collect::<Vec<_>>(),
                        "s1_offset_minutes": s1, "s2_offset_minutes": s2,
                    })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!("on call at {}", local(now, tz));
            if rotations.is_empty() {
                println!("  no rotation configured ([[paging.rotations]])");
            }
            for (id, cur, next) in &rotations {
                match cur {
                    Some(s) => println!(
                        "  {id}: {} ({}) until {}{}",
                        s.person.name,
                        s.person.id,
                        local(s.until, tz),
                        if s.by_override { ", by override" } else { "" }
                    ),
                    None => println!("  {id}: nobody"),
                }
                if let Some(n) = next {
                    println!(
                        "    next: {} ({}) from {}",
                        n.person.name,
                        n.person.id,
                        local(n.from, tz)
                    );
                }
            }
            println!("ladder (minutes after the ticket: S1 / S2)");
            for (n, slots, people, s1, s2) in &levels {
                let names = people
                    .iter()
                    .map(|p| format!("{} ({})", p.name, p.id))
                    .collect::<Vec<_>>()
                    .join(", ");
                println!(
                    "  {n}. {} → {}   {} / {}",
                    slots.join(", "),
                    if names.is_empty() {
                        "nobody".to_string()
                    } else {
                        names
                    },
                    s1.map_or("-".into(), |m| m.to_string()),
                    s2.map_or("-".into(), |m| m.to_string()),
                );
            }
            Ok(())
        }
        OncallCmd::Override {
            rotation,
            person,
            from,
            to,
            reason,
            by,
            cfg,
        } => {
            let config = load(&cfg)?;
            let tz = schedule_of(&config)?.timezone();
            if !config.paging.rotations.iter().any(|r| r.id == rotation) {
                let known = config
                    .paging
                    .rotations
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                bail!("no rotation \"{rotation}\" in [[paging.rotations]] (known: {known})");
            }
            let store = store_of(&config).await?;
            crate::paging::service::seed_people(&store, &config.paging).await?;
            if !store.people().await?.iter().any(|p| p.id == person) {
                bail!("no person \"{person}\" (see `astreinte people list`)");
            }
            let from = parse_instant(&from, tz)?;
            let to = parse_instant(&to, tz)?;
            if to <= from {
                bail!("--to must be after --from");
            }
            let id = store
                .add_override(&rotation, &person, from, to, &reason, &by, Utc::now())
                .await
                .context("saving the override")?;
            println!(
                "override {id}: {person} covers {rotation} from {} to {}",
                local(from, tz),
                local(to, tz)
            );
            Ok(())
        }
        OncallCmd::Overrides { json, cfg } => {
            let config = load(&cfg)?;
            let tz = schedule_of(&config)?.timezone();
            let store = store_of(&config).await?;
            let list = store.overrides(Utc::now()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                println!("no override in force or to come");
            }
            for o in list {
                println!(
                    "{}: {} covers {} from {} to {} ({}; by {})",
                    o.id,
                    o.person,
                    o.rotation,
                    local(o.starts_at, tz),
                    local(o.ends_at, tz),
                    o.reason,
                    o.created_by
                );
            }
            Ok(())
        }
        OncallCmd::RemoveOverride { id, cfg } => {
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            if !store.remove_override(id).await? {
                bail!("no override {id}");
            }
            println!("override {id} removed");
            Ok(())
        }
    }
}

pub async fn run_people(cmd: PeopleCmd) -> anyhow::Result<()> {
    match cmd {
        PeopleCmd::List { json, cfg } => {
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            crate::paging::service::seed_people(&store, &config.paging).await?;
            let people = store.people().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&people)?);
                return Ok(());
            }
            for p in people {
                println!(
                    "{}: {} [{}] phone {} email {}",
                    p.id,
                    p.name,
                    p.language,
                    p.phone.as_deref().unwrap_or("-"),
                    p.email.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        PeopleCmd::Set {
            id,
            name,
            phone,
            email,
            language,
            cfg,
        } => {
            let config = load(&cfg)?;
            // The same checks as the config file's, on a one-person roster.
            let candidate = crate::paging::roster::PersonConfig {
                id: id.clone(),
                name: name.clone(),
                phone: phone.clone(),
                email: email.clone(),
                language: language.clone(),
            };
            let mut issues = Vec::new();
            crate::paging::roster::validate(std::slice::from_ref(&candidate), &[], &mut issues);
            if let Some(i) = issues.first() {
                bail!(
                    "{}: {}\n  fix: {}",
                    i.key_path().replace("paging.people[0].", ""),
                    i.message,
                    i.fix
                );
            }
            let store = store_of(&config).await?;
            store
                .upsert_people(
                    &[PersonRow {
                        id: id.clone(),
                        name,
                        phone,
                        email,
                        language,
                    }],
                    "cli",
                    Utc::now(),
                )
                .await?;
            println!("{id} saved");
            Ok(())
        }
    }
}
