//! The faults of a drill's timeline, carried out by commands the operator gives, since only
//! they know how their deployment runs: `--fault kill-a='docker compose kill node-a'`,
//! `--fault stop-b='systemctl stop astreinte@b'`, `--fault restart-postgres='…'`. Each runs
//! under `sh -c`, bounded in time; what it did is kept for the report's log of the night.

use std::collections::BTreeMap;
use std::time::Duration;

use astreinte_core::drill::scenario::{FaultKind, Scenario};
use astreinte_core::drill::timeline::fault_key;
use chrono::{DateTime, Utc};

/// A fault's command may take this long (a drained node finishes its calls first).
const FAULT_LIMIT: Duration = Duration::from_secs(120);

/// The command for each fault key.
#[derive(Debug, Clone, Default)]
pub struct FaultCommands(BTreeMap<String, String>);

/// What a fault's command did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaultRun {
    pub at: DateTime<Utc>,
    pub fault: &'static str,
    pub command: String,
    /// The exit status, or why it did not run or finish.
    pub outcome: Result<i32, String>,
}

const KEYS: [&str; 5] = ["kill-a", "kill-b", "stop-a", "stop-b", "restart-postgres"];

impl FaultCommands {
    /// From `KEY=COMMAND` arguments.
    pub fn parse(args: &[String]) -> Result<FaultCommands, String> {
        let mut map = BTreeMap::new();
        for a in args {
            let Some((key, command)) = a.split_once('=') else {
                return Err(format!(
                    "--fault {a}: write KEY=COMMAND, e.g. --fault kill-a='kill -9 1234'"
                ));
            };
            let key = key.trim();
            if !KEYS.contains(&key) {
                return Err(format!(
                    "--fault {key}=…: the faults are {}",
                    KEYS.join(", ")
                ));
            }
            if command.trim().is_empty() {
                return Err(format!("--fault {key}= has no command"));
            }
            if map.insert(key.to_string(), command.to_string()).is_some() {
                return Err(format!("--fault {key} is given twice"));
            }
        }
        Ok(FaultCommands(map))
    }

    /// Every fault of `scenario` has its command (checked before the night starts, not at
    /// 2 a.m.).
    pub fn check(&self, scenario: &Scenario) -> Result<(), String> {
        let missing: Vec<&str> = scenario
            .faults
            .iter()
            .map(|f| fault_key(f.kind))
            .filter(|k| !self.0.contains_key(*k))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "the scenario has faults without a command: give --fault {}=COMMAND",
            missing.join("=COMMAND --fault ")
        ))
    }

    /// Runs the command of `kind` (at most [`FAULT_LIMIT`]).
    pub async fn run(&self, kind: FaultKind) -> FaultRun {
        let fault = fault_key(kind);
        let at = Utc::now();
        let Some(command) = self.0.get(fault).cloned() else {
            return FaultRun {
                at,
                fault,
                command: String::new(),
                outcome: Err("no command given".into()),
            };
        };
        tracing::warn!(fault, command, "drill fault");
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .kill_on_drop(true)
            .status();
        let outcome = match tokio::time::timeout(FAULT_LIMIT, child).await {
            Ok(Ok(status)) => status
                .code()
                .ok_or_else(|| format!("ended by a signal ({status})")),
            Ok(Err(e)) => Err(format!("cannot run sh: {e}")),
            Err(_) => Err(format!(
                "still running after {} s: stopped",
                FAULT_LIMIT.as_secs()
            )),
        };
        FaultRun {
            at,
            fault,
            command,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_named_by_fault_and_checked_against_the_scenario() {
        let c = FaultCommands::parse(&["kill-a=kill -9 1".into()]).unwrap_or_default();
        let s = Scenario::parse(
            "[night]\nname = \"n\"\nlength = \"1h\"\n\n[[faults]]\nat = \"1m\"\nkind = \"kill\"\nnode = \"a\"\n\n[[faults]]\nat = \"2m\"\nkind = \"restart-postgres\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let err = c.check(&s).err().unwrap_or_default();
        assert!(err.contains("--fault restart-postgres=COMMAND"), "{err}");
        assert!(FaultCommands::parse(&["kill-c=x".into()])
            .err()
            .unwrap_or_default()
            .contains("the faults are kill-a"));
        assert!(FaultCommands::parse(&["kill-a".into()]).is_err());
        assert!(FaultCommands::parse(&["kill-a=x".into(), "kill-a=y".into()]).is_err());
    }

    #[tokio::test]
    async fn a_fault_runs_its_command_and_keeps_its_status() {
        let c = FaultCommands::parse(&["stop-b=exit 3".into()]).unwrap_or_default();
        let run = c
            .run(FaultKind::Stop(astreinte_core::drill::scenario::Node::B))
            .await;
        assert_eq!((run.fault, run.outcome), ("stop-b", Ok(3)));
        let none = c.run(FaultKind::RestartPostgres).await;
        assert!(none.outcome.is_err());
    }
}
