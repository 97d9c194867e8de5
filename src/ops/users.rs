//! `astreinte users` and `astreinte audit`: console accounts, API tokens and the audit log.
//! Every change here is an audit event by "cli".

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use chrono::Utc;

use super::{load, store_of, ConfigArg};
use crate::admin::auth;
use crate::store::users::ROLES;

/// The actor of changes made with the CLI.
const CLI: &str = "cli";

#[derive(Debug, clap::Subcommand)]
pub enum UsersCmd {
    /// Create a console user; the password is the first line of standard input (12 to 256
    /// characters).
    Add {
        name: String,
        /// admin, technician or viewer
        #[arg(long)]
        role: String,
        /// The roster's person id this login is (see `astreinte people list`): who they cover
        /// as and whose tickets are "mine". Without it, the person whose id is the login name.
        #[arg(long)]
        person: Option<String>,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Link NAME to the roster's person PERSON (see `astreinte people list`): the console then
    /// knows them as that person (covering their own shift, "only mine", their language).
    Link {
        name: String,
        person: String,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Remove NAME's link to a person: the person whose id is the login name stands again.
    Unlink {
        name: String,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Set a new password (first line of standard input); ends the user's sessions.
    Passwd {
        name: String,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Make an API token for NAME (sent as `Authorization: Bearer …`); prints only the token,
    /// which is not kept anywhere: store it now.
    Token {
        name: String,
        /// What it is for (e.g. "backup script").
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// API tokens (of NAME, or everyone's): id, user, label, last use, revoked.
    Tokens {
        name: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Revoke an API token by its id (see `users tokens`).
    RevokeToken {
        id: i64,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Console users.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Disable a user: their sessions end at once and their API tokens stop working.
    Disable {
        name: String,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Enable a disabled user again.
    Enable {
        name: String,
        #[command(flatten)]
        cfg: ConfigArg,
    },
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// At most this many events, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Only events older than this event id (the next page).
    #[arg(long)]
    pub before: Option<i64>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub cfg: ConfigArg,
}

/// 1 to 64 letters, digits, ".", "_", "-" or "@".
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !ok {
        bail!("\"{name}\" is not a user name: use 1 to 64 letters, digits, \".\", \"_\", \"-\" or \"@\"");
    }
    Ok(())
}

/// The first line of standard input (a prompt on the terminal; it is not hidden there).
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!(
            "password ({}-{} characters; typed in clear, or pipe it): ",
            auth::MIN_PASSWORD,
            auth::MAX_PASSWORD
        );
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password on standard input (e.g. `printf '%s\\n' \"$PASSWORD\" | astreinte users add …`)");
    }
    Ok(password)
}

async fn hashed(password: String) -> anyhow::Result<String> {
    auth::hash_password(password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn when(t: Option<chrono::DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".into(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

pub async fn run_users(cmd: UsersCmd) -> anyhow::Result<()> {
    match cmd {
        UsersCmd::Add {
            name,
            role,
            person,
            cfg,
        } => {
            check_name(&name)?;
            if !ROLES.contains(&role.as_str()) {
                bail!("--role \"{role}\" is not one of admin, technician, viewer");
            }
            let person = person.filter(|p| !p.trim().is_empty());
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            if let Some(p) = &person {
                known_person(&store, &config, p).await?;
            }
            let hash = hashed(read_password()?).await?;
            store
                .create_user_as(&name, &role, &hash, person.as_deref(), CLI, Utc::now())
                .await?;
            match person {
                Some(p) => println!("user {name} ({role}) created, linked to person {p}"),
                None => println!("user {name} ({role}) created"),
            }
            Ok(())
        }
        UsersCmd::Link { name, person, cfg } => {
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            known_person(&store, &config, &person).await?;
            if !store
                .set_user_person(&name, Some(&person), CLI, Utc::now())
                .await?
            {
                bail!("there is no user named \"{name}\" (see `astreinte users list`)");
            }
            println!("{name} is linked to person {person}");
            Ok(())
        }
        UsersCmd::Unlink { name, cfg } => {
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            if !store.set_user_person(&name, None, CLI, Utc::now()).await? {
                bail!("there is no user named \"{name}\" (see `astreinte users list`)");
            }
            println!(
                "{name} is linked to no person: the console takes the login name as the person id"
            );
            Ok(())
        }
        UsersCmd::Passwd { name, cfg } => {
            let hash = hashed(read_password()?).await?;
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            if !store
                .set_user_password(&name, &hash, CLI, Utc::now())
                .await?
            {
                bail!("there is no user named \"{name}\"");
            }
            println!("password of {name} changed; their sessions have ended");
            Ok(())
        }
        UsersCmd::Token { name, label, cfg } => {
            if label.chars().count() > 200 {
                bail!("--label is longer than 200 characters");
            }
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            let token = auth::new_api_token();
            store
                .create_api_token(&name, &auth::secret_hash(&token), &label, CLI, Utc::now())
                .await?;
            println!("{token}");
            Ok(())
        }
        UsersCmd::Tokens { name, json, cfg } => {
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            let tokens = store.api_tokens(name.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
            } else if tokens.is_empty() {
                println!("no API token");
            } else {
                for t in &tokens {
                    println!(
                        "#{} {} {:?} created {}, last used {}{}",
                        t.id,
                        t.user_name,
                        t.label,
                        when(Some(t.created_at)),
                        when(t.last_used),
                        if t.revoked { ", REVOKED" } else { "" }
                    );
                }
            }
            Ok(())
        }
        UsersCmd::RevokeToken { id, cfg } => {
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            if !store.revoke_api_token(id, CLI, Utc::now()).await? {
                bail!("there is no API token #{id}, or it is revoked already");
            }
            println!("API token #{id} revoked");
            Ok(())
        }
        UsersCmd::List { json, cfg } => {
            let config = load(&cfg)?;
            let store = store_of(&config).await?;
            let users = store.users().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else if users.is_empty() {
                println!("no console user yet: astreinte users add NAME --role admin");
            } else {
                for u in &users {
                    println!(
                        "{} {}{}, person {}{} (since {})",
                        u.name,
                        u.role,
                        if u.disabled { ", DISABLED" } else { "" },
                        u.person_id.as_deref().unwrap_or(&u.name),
                        if u.person_id.is_none() {
                            " (the login name; `astreinte users link` to change)"
                        } else {
                            ""
                        },
                        when(Some(u.created_at))
                    );
                }
            }
            Ok(())
        }
        UsersCmd::Disable { name, cfg } => set_disabled(name, cfg, true).await,
        UsersCmd::Enable { name, cfg } => set_disabled(name, cfg, false).await,
    }
}

/// Ok if `person` is in the roster (the configuration's people seeded first, as `serve` would).
async fn known_person(
    store: &crate::store::Store,
    config: &crate::config::Config,
    person: &str,
) -> anyhow::Result<()> {
    crate::paging::service::seed_people(store, &config.paging).await?;
    if !store.people().await?.iter().any(|p| p.id == person) {
        bail!(
            "there is no person \"{person}\" in the paging roster: see `astreinte people list` for the ids, or add them first with `astreinte people set {person} --name …` (or in [[paging.people]])"
        );
    }
    Ok(())
}

async fn set_disabled(name: String, cfg: ConfigArg, disabled: bool) -> anyhow::Result<()> {
    let config = load(&cfg)?;
    let store = store_of(&config).await?;
    if !store
        .set_user_disabled(&name, disabled, CLI, Utc::now())
        .await?
    {
        bail!("there is no user named \"{name}\"");
    }
    if disabled {
        println!("{name} disabled: their sessions have ended and their API tokens stop working");
    } else {
        println!("{name} enabled");
    }
    Ok(())
}

pub async fn run_audit(a: AuditArgs) -> anyhow::Result<()> {
    if !(1..=1000).contains(&a.limit) {
        bail!("--limit {}: ask for 1 to 1000 events", a.limit);
    }
    let config = load(&a.cfg)?;
    let store = store_of(&config).await?;
    let events = store.audit_events(a.limit, a.before).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    if events.is_empty() {
        println!("no audit event");
    }
    let show =
        |v: &Option<serde_json::Value>| v.as_ref().map_or("-".to_string(), |v| v.to_string());
    for e in &events {
        println!(
            "#{} {} {} {} {}: {} → {}",
            e.id,
            e.at.format("%Y-%m-%d %H:%M:%S UTC"),
            e.actor,
            e.action,
            e.target,
            show(&e.before),
            show(&e.after)
        );
    }
    Ok(())
}
