//! Who is on call now and next, and whom each ladder level pages: the view the CLI
//! (`oncall now --json`) and the console share.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::config::PagingConfig;
use super::facts::PagedPerson;
use super::ladder::LadderPolicy;
use super::roster::{Override, Roster, RotationConfig, Shift};
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
/// s1_offset_minutes, s2_offset_minutes}]}`.
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
    let policy = LadderPolicy::from_config(&config.ladder, &config.in_hours, sla)
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
    let ladder: Vec<Value> = policy
        .levels()
        .iter()
        .enumerate()
        .map(|(i, slots)| {
            let people: Vec<Value> = slots
                .iter()
                .flat_map(|s| roster.resolve(s, now, &overrides))
                .map(|p| json!({"id": p.id, "name": p.name, "phone": p.phone, "email": p.email, "language": p.language}))
                .collect();
            json!({
                "level": i + 1,
                "slots": slots,
                "people": people,
                "s1_offset_minutes": policy.offsets(Severity::S1).get(i).map(|d| d.num_minutes()),
                "s2_offset_minutes": policy.offsets(Severity::S2).get(i).map(|d| d.num_minutes()),
            })
        })
        .collect();
    Ok(json!({"at": now, "timezone": tz.name(), "rotations": rotations, "ladder": ladder}))
}
