//! Business hours and holidays as new calls and tickets see them: the config's `[schedule]`
//! with the console's stored changes (`store::hours`) on top. [`HoursFeed`] rebuilds the
//! schedule when the store's marker moves and swaps it into the engine's [`LiveSchedule`].

use std::sync::Arc;

use tracing::{info, warn};

use crate::schedule::{ClosureConfig, ExtraDay, LiveSchedule, Schedule, ScheduleConfig};
use crate::store::hours::HoursChange;
use crate::store::Store;

/// `base` (the config's `[schedule]`) with the stored changes on top.
pub fn effective_config(base: &ScheduleConfig, changes: &[HoursChange]) -> ScheduleConfig {
    let mut cfg = base.clone();
    for c in changes {
        match (c.kind.as_str(), &c.day) {
            ("holiday_added", Some(day)) => {
                cfg.holidays.extra.retain(|e| &e.date != day);
                cfg.holidays.extra.push(ExtraDay {
                    date: day.clone(),
                    name: c.name.clone(),
                });
            }
            ("holiday_removed", Some(day)) if !cfg.holidays.removed.contains(day) => {
                cfg.holidays.removed.push(day.clone());
            }
            ("closure", _) => {
                if let (Some(from), Some(to)) = (&c.starts, &c.ends) {
                    cfg.holidays.closures.push(ClosureConfig {
                        from: from.clone(),
                        to: to.clone(),
                        name: c.name.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    cfg
}

/// The schedule of `cfg`, or every reason it does not build, on one line.
pub fn build(cfg: &ScheduleConfig) -> Result<Schedule, String> {
    Schedule::from_config(cfg).map_err(|errs| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Puts the stored changes in force now, once (the service does this on every change; tools
/// and tests without it call this).
pub async fn apply_stored_changes(store: &Store, base: &ScheduleConfig, live: &LiveSchedule) {
    match store.hours_changes().await {
        Ok(changes) if !changes.is_empty() => put_in_force(base, &changes, live),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "hours: cannot read the admin changes; kept the config's"),
    }
}

/// Makes `base` with `changes` the schedule of `live`, unless it does not build.
fn put_in_force(base: &ScheduleConfig, changes: &[HoursChange], live: &LiveSchedule) {
    match build(&effective_config(base, changes)) {
        Ok(s) => {
            live.set(s);
            info!(changes = changes.len(), "hours: admin changes applied");
        }
        Err(e) => {
            warn!(error = %e, "hours: the stored changes do not make a valid schedule; kept the one in force")
        }
    }
}

/// The engine's schedule, kept in step with the store.
pub(super) struct HoursFeed {
    base: ScheduleConfig,
    live: LiveSchedule,
    /// The store's marker (count and last id of the changes) last put in force.
    seen: Option<(i64, i64)>,
}

impl HoursFeed {
    pub(super) fn new(base: ScheduleConfig, live: LiveSchedule) -> HoursFeed {
        HoursFeed {
            base,
            live,
            seen: None,
        }
    }

    /// The schedule in force.
    pub(super) fn current(&self) -> Arc<Schedule> {
        self.live.get()
    }

    pub(super) fn live(&self) -> &LiveSchedule {
        &self.live
    }

    /// Looks at the store's marker (one indexed row) and, when it moved, rebuilds the
    /// schedule from the changes. True when the schedule in force was replaced. The store
    /// being down, or changes that do not build, keep the schedule in force.
    pub(super) async fn look(&mut self, store: &Store) -> bool {
        let Ok(marker) = store.hours_marker().await else {
            return false;
        };
        if self.seen == Some(marker) {
            return false;
        }
        let changes = match store.hours_changes().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "hours: cannot read the admin changes; kept the ones in force");
                return false;
            }
        };
        let first = self.seen.is_none();
        self.seen = Some(marker);
        if changes.is_empty() {
            if first {
                // Nothing stored: the config's schedule, as built at start, stays.
                return false;
            }
            // The last change was undone: back to the config's `[schedule]`.
            return match build(&self.base) {
                Ok(s) => {
                    self.live.set(s);
                    info!("hours: no admin change left; the config's schedule applies");
                    true
                }
                Err(e) => {
                    warn!(error = %e, "hours: the config's schedule does not build; kept the one in force");
                    false
                }
            };
        }
        put_in_force(&self.base, &changes, &self.live);
        true
    }
}
