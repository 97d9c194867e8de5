//! `astreinte oncall` and `astreinte people`: the roster as the operators see it.

use anyhow::{bail, Context};
use chrono::Utc;

use super::{load, local, parse_instant, schedule_of, store_of, ConfigArg};
use crate::store::PersonRow;

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
            let v =
                crate::paging::view::oncall_json(&store, &config.paging, schedule.sla(), tz, now)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let when = |v: &serde_json::Value| {
                v.as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| local(t.with_timezone(&Utc), tz))
                    .unwrap_or_default()
            };
            println!("on call at {}", local(now, tz));
            let rotations = v["rotations"].as_array().cloned().unwrap_or_default();
            if rotations.is_empty() {
                println!("  no rotation configured ([[paging.rotations]])");
            }
            for r in &rotations {
                let id = r["rotation"].as_str().unwrap_or_default();
                let cur = &r["now"];
                if cur.is_null() {
                    println!("  {id}: nobody");
                } else {
                    println!(
                        "  {id}: {} ({}) until {}{}",
                        cur["name"].as_str().unwrap_or_default(),
                        cur["person"].as_str().unwrap_or_default(),
                        when(&cur["until"]),
                        if cur["by_override"] == true {
                            ", by override"
                        } else {
                            ""
                        }
                    );
                }
                let next = &r["next"];
                if !next.is_null() {
                    println!(
                        "    next: {} ({}) from {}",
                        next["name"].as_str().unwrap_or_default(),
                        next["person"].as_str().unwrap_or_default(),
                        when(&next["from"])
                    );
                }
            }
            println!("ladder (minutes after the ticket: S1 / S2)");
            for l in v["ladder"].as_array().cloned().unwrap_or_default() {
                let slots: Vec<&str> = l["slots"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                    .unwrap_or_default();
                let names: Vec<String> = l["people"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|p| {
                                format!(
                                    "{} ({})",
                                    p["name"].as_str().unwrap_or_default(),
                                    p["id"].as_str().unwrap_or_default()
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let minutes =
                    |x: &serde_json::Value| x.as_i64().map_or("-".to_string(), |m| m.to_string());
                println!(
                    "  {}. {} → {}   {} / {}",
                    l["level"],
                    slots.join(", "),
                    if names.is_empty() {
                        "nobody".to_string()
                    } else {
                        names.join(", ")
                    },
                    minutes(&l["s1_offset_minutes"]),
                    minutes(&l["s2_offset_minutes"]),
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
