//! Who is on call now and next, and whom each ladder level pages: the view the CLI
//! (`oncall now --json`) and the console share.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::config::PagingConfig;
use super::facts::PagedPerson;
use super::ladder::LadderPolicy;
use super::roster::{new_ladder_gaps, LadderGap, Override, Roster, RotationConfig, Shift};
use crate::schedule::SlaConfig;
use crate::store::{Store, StoreError};
use crate::triage::Severity;

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(String),
}

/// The roster as it stands: the store's people and the overrides not ended by `since`, with
/// the config's rotations. The planner and the views build it alike.
pub async fn roster_now(
    store: &Store,
    rotations: &[RotationConfig],
    tz: Tz,
    since: DateTime<Utc>,
) -> Result<(Roster, Vec<Override>), ViewError> {
    let people: Vec<PagedPerson> = store
        .people()
        .await?
        .into_iter()
        .map(PagedPerson::from)
        .collect();
    let overrides = store
        .overrides(since)
        .await?
        .into_iter()
        .map(Override::from)
        .collect();
    let roster = Roster::new(people, rotations, tz)
        .map_err(|e| ViewError::Config(format!("the roster: {e}")))?;
    Ok((roster, overrides))
}

fn shift_json(s: &Option<Shift>) -> Value {
    match s {
        Some(s) => json!({
            "person": s.person.id, "name": s.person.name, "from": s.from, "until": s.until,
            "by_override": s.by_override, "override_id": s.override_id,
        }),
        None => Value::Null,
    }
}

/// `{at, timezone, rotations: [{rotation, now, next}], ladder: [{level, slots, people,
/// warnings, s1_offset_minutes, s2_offset_minutes}], warnings}`: `warnings` says each level
/// that has nobody on call or someone a lower level already pages.
pub async fn oncall_json(
    store: &Store,
    config: &PagingConfig,
    sla: &SlaConfig,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Value, ViewError> {
    let (roster, overrides) = roster_now(
        store,
        &config.rotations,
        tz,
        now - chrono::Duration::days(400),
    )
    .await?;
    let policy = LadderPolicy::from_config(
        &config.ladder,
        &config.in_hours,
        sla,
        config.group_window(crate::schedule::TimeScale::REAL),
    )
    .map_err(|e| ViewError::Config(format!("[paging.ladder]: {e}")))?;
    let rotations: Vec<Value> = config
        .rotations
        .iter()
        .map(|r| {
            json!({
                "rotation": r.id,
                "now": shift_json(&roster.on_call(&r.id, now, &overrides)),
                "next": shift_json(&roster.next_on_call(&r.id, now, &overrides)),
            })
        })
        .collect();
    // A level with nobody, or with someone a lower level already pages (an admin's forced
    // change, an old row, or the config itself): said beside the level and above the ladder.
    let gaps = roster.ladder_gaps(policy.levels(), now, &overrides);
    for g in &gaps {
        tracing::debug!(gap = %g, "the escalation ladder has a gap");
    }
    let ladder: Vec<Value> = policy
        .levels()
        .iter()
        .enumerate()
        .map(|(i, slots)| {
            let warnings: Vec<String> = gaps
                .iter()
                .filter(|g| g.level() == i + 1)
                .map(|g| g.to_string())
                .collect();
            let people: Vec<Value> = slots
                .iter()
                .flat_map(|s| roster.resolve(s, now, &overrides))
                .map(|p| json!({"id": p.id, "name": p.name, "phone": p.phone, "email": p.email, "language": p.language}))
                .collect();
            json!({
                "level": i + 1,
                "slots": slots,
                "people": people,
                "warnings": warnings,
                "s1_offset_minutes": policy.offsets(Severity::S1).get(i).map(|d| d.num_minutes()),
                "s2_offset_minutes": policy.offsets(Severity::S2).get(i).map(|d| d.num_minutes()),
            })
        })
        .collect();
    let warnings: Vec<String> = gaps.iter().map(|g| g.to_string()).collect();
    Ok(
        json!({"at": now, "timezone": tz.name(), "rotations": rotations, "ladder": ladder, "warnings": warnings}),
    )
}

/// A change of the covers (on-call overrides) about to be made.
#[derive(Debug, Clone)]
pub enum CoverChange {
    /// A new cover (its id does not matter: it is taken as the newest).
    Add(Override),
    /// Removing the cover with this id.
    Remove(i64),
}

/// The ladder gaps a change of covers would bring from `now` to the change's end (see
/// [`new_ladder_gaps`]), each with the first instant it would appear. Empty when the change
/// leaves every level with someone not already paged lower (or only keeps gaps it found).
pub async fn gaps_of_change(
    store: &Store,
    config: &PagingConfig,
    tz: Tz,
    now: DateTime<Utc>,
    change: &CoverChange,
) -> Result<Vec<(DateTime<Utc>, LadderGap)>, ViewError> {
    let (roster, before) = roster_now(store, &config.rotations, tz, now).await?;
    let (after, from, until) = match change {
        CoverChange::Add(o) => {
            let newest = before
                .iter()
                .map(|b| b.id)
                .max()
                .unwrap_or(0)
                .saturating_add(1);
            let mut after = before.clone();
            after.push(Override {
                id: newest.max(o.id),
                ..o.clone()
            });
            (after, o.from, o.to)
        }
        CoverChange::Remove(id) => {
            let Some(gone) = before.iter().find(|o| o.id == *id) else {
                return Ok(Vec::new());
            };
            let (from, until) = (gone.from, gone.to);
            let after = before.iter().filter(|o| o.id != *id).cloned().collect();
            (after, from, until)
        }
    };
    Ok(new_ladder_gaps(
        &config.ladder.levels,
        (&roster, &before),
        (&roster, &after),
        from.max(now),
        until,
    ))
}

/// "level 2 (director) would be tech1 (Martin Roy), who is already level 1 (from 2026-12-07
/// 09:00 EST)", each gap so, joined by "; ".
pub fn describe_gaps(gaps: &[(DateTime<Utc>, LadderGap)], tz: Tz) -> String {
    gaps.iter()
        .map(|(at, g)| {
            format!(
                "{} (from {})",
                g.describe(true),
                at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
