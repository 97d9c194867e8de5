//! A scenario as the runner plays it: every cue (a call to place, a sink to switch, a fault to
//! cause) at its WALL offset from the night's start, in order. Pure: the runner's shell sleeps
//! until each offset and carries the cue out.

use std::time::Duration;

use super::scenario::{Call, FaultKind, Node, OutageMode, Scenario};

/// Which receiver of written pages a cue switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SinkKind {
    Mail,
    Webhook,
}

/// What a receiver does from a cue on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SinkState {
    Up,
    Down,
    Failing,
}

/// One thing the runner does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cue {
    /// Place this call (its index in [`Scenario::calls`]).
    Call {
        index: usize,
        call: Call,
    },
    Sink {
        sink: SinkKind,
        state: SinkState,
    },
    Fault(FaultKind),
}

impl Cue {
    /// Same-instant cues go: sinks first (an outage that starts with a call is already on),
    /// then faults, then calls.
    fn rank(&self) -> u8 {
        match self {
            Cue::Sink { .. } => 0,
            Cue::Fault(_) => 1,
            Cue::Call { .. } => 2,
        }
    }
}

/// A cue at its wall offset from the night's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timed {
    pub at: Duration,
    pub cue: Cue,
}

/// Every cue of `scenario`, in the order to carry them out.
pub fn timeline(scenario: &Scenario) -> Vec<Timed> {
    let wall = |night: Duration| scenario.wall(night);
    let mut out: Vec<Timed> = scenario
        .calls()
        .into_iter()
        .enumerate()
        .map(|(index, call)| Timed {
            at: wall(call.at),
            cue: Cue::Call { index, call },
        })
        .collect();
    for (sink, outages) in [
        (SinkKind::Mail, &scenario.smtp),
        (SinkKind::Webhook, &scenario.webhook),
    ] {
        for o in outages {
            let state = match o.mode {
                OutageMode::Down => SinkState::Down,
                OutageMode::ServerError => SinkState::Failing,
            };
            out.push(Timed {
                at: wall(o.from),
                cue: Cue::Sink { sink, state },
            });
            out.push(Timed {
                at: wall(o.to),
                cue: Cue::Sink {
                    sink,
                    state: SinkState::Up,
                },
            });
        }
    }
    for f in &scenario.faults {
        out.push(Timed {
            at: wall(f.at),
            cue: Cue::Fault(f.kind),
        });
    }
    // Stable: calls keep their order among themselves.
    out.sort_by_key(|t| (t.at, t.cue.rank()));
    out
}

/// The name a fault's command is given under (`--fault kill-a=…`).
pub fn fault_key(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Kill(Node::A) => "kill-a",
        FaultKind::Kill(Node::B) => "kill-b",
        FaultKind::Stop(Node::A) => "stop-a",
        FaultKind::Stop(Node::B) => "stop-b",
        FaultKind::RestartPostgres => "restart-postgres",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        Scenario::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn cues_are_in_wall_time_and_order_with_outages_opened_and_closed() {
        let s = scenario(
            r#"
[night]
name = "t"
length = "2h"
time_scale = 60

[[calls]]
at = "30m"
severity = "S1"
caller = "+15145550100"

[[calls]]
at = "10m"
severity = "S2"
caller = "+15145550101"

[[smtp.outages]]
from = "30m"
to = "1h"
mode = "down"

[[faults]]
at = "30m"
kind = "kill"
node = "a"
"#,
        );
        let t = timeline(&s);
        let view: Vec<(u64, String)> = t
            .iter()
            .map(|c| {
                let what = match &c.cue {
                    Cue::Call { call, .. } => format!("call {}", call.severity),
                    Cue::Sink { sink, state } => format!("{sink:?} {state:?}"),
                    Cue::Fault(k) => fault_key(*k).to_string(),
                };
                (c.at.as_secs(), what)
            })
            .collect();
        assert_eq!(
            view,
            [
                (10, "call S2".to_string()),
                (30, "Mail Down".to_string()),
                (30, "kill-a".to_string()),
                (30, "call S1".to_string()),
                (60, "Mail Up".to_string()),
            ]
        );
    }

    #[test]
    fn the_storm_is_two_hundred_calls_within_fifteen_wall_seconds() {
        let s = scenario(include_str!("../../../../drills/storm.toml"));
        let t = timeline(&s);
        let calls: Vec<&Timed> = t
            .iter()
            .filter(|c| matches!(c.cue, Cue::Call { .. }))
            .collect();
        assert_eq!(calls.len(), 200);
        assert!(calls.iter().all(|c| c.at < Duration::from_secs(15)));
        assert!(t.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
