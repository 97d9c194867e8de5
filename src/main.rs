//! The `astreinte` binary: the engine (`serve`) and its operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use astreinte::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "astreinte",
    version,
    about = "Support-line telephony engine: SIP, IVR, emergency voicemail, tickets, on-call paging"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine (default config: config/astreinte.toml, else the embedded defaults).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration; each error names the file, the line and the fix.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The night drill: check a scenario (drills/*.toml), or report on a drilled night
    /// (targets met, pages, duplicates, lost calls) as a table, JSON and SVG.
    Drill(astreinte::drill::command::DrillCommand),
    #[command(flatten)]
    Ops(astreinte::ops::OpsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ASTREINTE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Values from the network are written escaped: no forged lines, no terminal codes.
        .fmt_fields(log_fields())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // `serve` raises the open-file limit itself and shares it out (`limits::OpenFileBudget`).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("astreinte: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.command));
    // Dropping the runtime waits for every worker thread with no bound, and a task that never
    // yields (seen: sqlx's pool maintenance spinning after a CLI command failed) then keeps a
    // finished command alive forever. The work is done: give stragglers a moment, then exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "astreinte: {}",
                astreinte::printable::for_terminal(&format!("{e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config } => {
            let (config, file) = match Config::load(config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    eprintln!("astreinte: refusing to start on an invalid configuration");
                    return Ok(ExitCode::from(2));
                }
            };
            tracing::info!(config = %file.display(), "configuration loaded");
            astreinte::engine::serve(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { config } => match Config::load(config.as_deref()) {
            Ok((_, file)) => {
                println!("{}: ok", file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(2))
            }
        },
        Command::Drill(drill) => drill.run().await,
        Command::Ops(ops) => {
            ops.run().await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The field formatter of the engine's log: every value (the message included) goes through
/// [`escaped`](astreinte::printable::escaped), so nothing a peer sent can break a line or reach the terminal as a control.
fn log_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        if field.name() == "message" {
            write!(w, "{}", astreinte::printable::escaped(&text))
        } else {
            write!(
                w,
                "{}={}",
                field.name(),
                astreinte::printable::escaped(&text)
            )
        }
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_escapes_fields_and_messages() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(log_fields())
            .with_ansi(false)
            .with_writer(move || out.clone())
            .finish();
        let caller = "15145550100\r\nERROR forged line\u{1b}[2J";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(caller = %caller, quoted = ?caller, "call from {caller}");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text}");
        assert!(
            text.contains("call from 15145550100\\r\\nERROR forged line\\u{1b}[2J"),
            "{text}"
        );
        assert!(text.contains("caller=15145550100\\r\\n"), "{text}");
    }
}
