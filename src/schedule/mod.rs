//! Business hours, holidays, maintenance windows and SLA deadlines (see the schedule issue).

use serde::Deserialize;

use crate::config::{ConfigIssue, KeySeg};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    #[serde(default = "default_tz")]
    pub timezone: String,
}

fn default_tz() -> String {
    "America/Toronto".into()
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            timezone: default_tz(),
        }
    }
}

impl ScheduleConfig {
    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            issues.push(ConfigIssue::new(
                vec![KeySeg::Key("schedule"), KeySeg::Key("timezone")],
                format!("\"{}\" is not an IANA time zone", self.timezone),
                "write a zone name such as \"America/Toronto\"",
            ));
        }
    }
}
