//! `astreinte oncall` and `astreinte people`: the roster as the operators see it.

use anyhow::{bail, Context};
use chrono::Utc;

use super::{load, local, parse_instant, schedule_of, store_of, ConfigArg};
use crate::paging::roster::{LadderGap, Override};
use crate::paging::view::{describe_gaps, gaps_of_change, CoverChange};
use crate::store::audit::NewAudit;
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
        /// Set it even if a ladder level is left with nobody on call or with someone a lower
        /// level already pages (recorded in the audit log).
        #[arg(long)]
        force: bool,
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
        /// Remove it even if a ladder level is left with nobody on call or with someone a
        /// lower level already pages (recorded in the audit log).
        #[arg(long)]
        force: bool,
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
            // A level with nobody, or the same person as a lower level: the climb is short.
            for w in v["warnings"].as_array().cloned().unwrap_or_default() {
                println!(
                    "  WARNING: {} (a ticket would reach fewer people than the ladder lists)",
                    w.as_str().unwrap_or_default()
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
            force,
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
            let now = Utc::now();
            let change = CoverChange::Add(Override {
                id: 0,
                rotation: rotation.clone(),
                person: person.clone(),
                from,
                to,
                reason: reason.clone(),
            });
            let gaps = short_ladder(&store, &config, tz, now, &change, force).await?;
            let id = store
                .add_override(&rotation, &person, from, to, &reason, &by, now)
                .await
                .context("saving the override")?;
            let mut after = serde_json::json!({"id": id, "rotation": rotation, "person": person, "from": from, "to": to, "reason": reason});
            if !gaps.is_empty() {
                after["forced"] = true.into();
                after["gaps"] = describe_gaps(&gaps, tz).into();
            }
            store
                .audit(&NewAudit {
                    actor: &by,
                    action: "override.add",
                    target: &rotation,
                    before: None,
                    after: Some(after),
                    at: now,
                })
                .await?;
            println!(
                "override {id}: {person} covers {rotation} from {} to {}",
                local(from, tz),
                local(to, tz)
            );
            if !gaps.is_empty() {
                println!("WARNING (forced): {}", describe_gaps(&gaps, tz));
            }
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
        OncallCmd::RemoveOverride { id, force, cfg } => {
            let config = load(&cfg)?;
            let tz = schedule_of(&config)?.timezone();
            let store = store_of(&config).await?;
            let now = Utc::now();
            let before = store
                .overrides(now - chrono::Duration::days(400))
                .await?
                .into_iter()
                .find(|o| o.id == id);
            let gaps =
                short_ladder(&store, &config, tz, now, &CoverChange::Remove(id), force).await?;
            if !store.remove_override(id).await? {
                bail!("no override {id}");
            }
            store
                .audit(&NewAudit {
                    actor: "cli",
                    action: "override.remove",
                    target: &id.to_string(),
                    before: before.and_then(|b| serde_json::to_value(b).ok()),
                    after: (!gaps.is_empty()).then(
                        || serde_json::json!({"forced": true, "gaps": describe_gaps(&gaps, tz)}),
                    ),
                    at: now,
                })
                .await?;
            println!("override {id} removed");
            if !gaps.is_empty() {
                println!("WARNING (forced): {}", describe_gaps(&gaps, tz));
            }
            Ok(())
        }
    }
}

/// The gaps `change` brings to the ladder: an error naming them, unless `force`.
async fn short_ladder(
    store: &crate::store::Store,
    config: &crate::config::Config,
    tz: chrono_tz::Tz,
    now: chrono::DateTime<Utc>,
    change: &CoverChange,
    force: bool,
) -> anyhow::Result<Vec<(chrono::DateTime<Utc>, LadderGap)>> {
    let gaps = gaps_of_change(store, &config.paging, tz, now, change)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !gaps.is_empty() && !force {
        bail!(
            "this change would leave the escalation ladder short: {}; add --force if it is meant",
            describe_gaps(&gaps, tz)
        );
    }
    if !gaps.is_empty() {
        tracing::warn!(gaps = %describe_gaps(&gaps, tz), "a forced cover change leaves the ladder short");
    }
    Ok(gaps)
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
