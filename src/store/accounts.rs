//! Customer accounts: registered numbers identify the company calling; contacts by role
//! (guide section 3: administrative, technical, billing). Imported from CSV.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{micros, on_read, on_write, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactRole {
    Administrative,
    Technical,
    Billing,
}

impl ContactRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ContactRole::Administrative => "administrative",
            ContactRole::Technical => "technical",
            ContactRole::Billing => "billing",
        }
    }
}

impl fmt::Display for ContactRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub role: ContactRole,
    pub name: String,
    pub phone: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub code: String,
    pub company: String,
    pub address: String,
    /// Normalised (see [`normalise_number`]).
    pub numbers: Vec<String>,
    pub contacts: Vec<Contact>,
    /// "fr" or "en": what its callers hear when they skip the language choice (611).
    pub language: Option<String>,
}

/// What a caller's number resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountRef {
    pub id: i64,
    pub code: String,
    pub company: String,
    pub language: Option<String>,
}

/// Digits only; a 10-digit North American number gets its leading 1, so "+1 514 907 3400",
/// "514-907-3400" and "15149073400" are the same key. Short codes (e.g. "611") stay as they are.
pub fn normalise_number(s: &str) -> Option<String> {
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    let junk = s
        .chars()
        .any(|c| !(c.is_ascii_digit() || " +-().".contains(c)));
    if junk || digits.len() < 3 || digits.len() > 15 {
        return None;
    }
    Some(if digits.len() == 10 {
        format!("1{digits}")
    } else {
        digits
    })
}

/// One CSV row: one account with its numbers (separated by `;`) and up to one contact per role.
#[derive(Debug, Deserialize)]
struct CsvRow {
    account: String,
    company: String,
    #[serde(default)]
    address: String,
    numbers: String,
    #[serde(default)]
    admin_name: String,
    #[serde(default)]
    admin_phone: String,
    #[serde(default)]
    admin_email: String,
    #[serde(default)]
    technical_name: String,
    #[serde(default)]
    technical_phone: String,
    #[serde(default)]
    technical_email: String,
    #[serde(default)]
    billing_name: String,
    #[serde(default)]
    billing_phone: String,
    #[serde(default)]
    billing_email: String,
    /// Optional last column: "fr" or "en".
    #[serde(default)]
    language: String,
}

/// The CSV header `accounts import` expects.
pub const CSV_HEADER: &str = "account,company,address,numbers,admin_name,admin_phone,admin_email,\
technical_name,technical_phone,technical_email,billing_name,billing_phone,billing_email[,language]";

/// Parses an accounts CSV; every error names its line, and nothing is imported unless all is
/// well.
pub fn parse_csv(input: impl Read) -> Result<Vec<Account>, StoreError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut out = Vec::new();
    let mut seen: HashMap<String, (u64, String)> = HashMap::new();
    for rec in rdr.deserialize::<CsvRow>() {
        let row = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            StoreError::Invalid(format!("line {line}: {e} (expected header: {CSV_HEADER})"))
        })?;
        let line = out.len() as u64 + 2;
        if row.account.is_empty() || row.company.is_empty() {
            return Err(StoreError::Invalid(format!(
                "line {line}: account and company are required"
            )));
        }
        let mut numbers = Vec::new();
        for raw in row
            .numbers
            .split([';', '|'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let n = normalise_number(raw).ok_or_else(|| {
                StoreError::Invalid(format!("line {line}: \"{raw}\" is not a phone number"))
            })?;
            if let Some((other_line, other)) = seen.get(&n) {
                return Err(StoreError::Invalid(format!(
                    "line {line}: number {raw} is already registered to {other} on line {other_line}"
                )));
            }
            seen.insert(n.clone(), (line, row.account.clone()));
            numbers.push(n);
        }
        if numbers.is_empty() {
            return Err(StoreError::Invalid(format!(
                "line {line}: account {} has no registered number",
                row.account
            )));
        }
        let mut contacts = Vec::new();
        for (role, name, phone, email) in [
            (
                ContactRole::Administrative,
                row.admin_name,
                row.admin_phone,
                row.admin_email,
            ),
            (
                ContactRole::Technical,
                row.technical_name,
                row.technical_phone,
                row.technical_email,
            ),
            (
                ContactRole::Billing,
                row.billing_name,
                row.billing_phone,
                row.billing_email,
            ),
        ] {
            if !(name.is_empty() && phone.is_empty() && email.is_empty()) {
                contacts.push(Contact {
                    role,
                    name,
                    phone,
                    email,
                });
            }
        }
        let language = match row.language.to_ascii_lowercase().as_str() {
            "" => None,
            l @ ("fr" | "en") => Some(l.to_string()),
            other => {
                return Err(StoreError::Invalid(format!(
                    "line {line}: language \"{other}\" is neither fr nor en"
                )))
            }
        };
        out.push(Account {
            code: row.account,
            company: row.company,
            address: row.address,
            numbers,
            contacts,
            language,
        });
    }
    Ok(out)
}

impl Store {
    /// Creates or replaces accounts (numbers and contacts included) in one transaction. A number
    /// registered to another account moves to this one (a port between customers).
    pub async fn upsert_accounts(
        &self,
        accounts: &[Account],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let now = micros(now);
        on_write!(&self.db, pool => {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            for a in accounts {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO accounts (code, company, address, created_at, updated_at, language) \
                     VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (code) DO UPDATE SET \
                     company = excluded.company, address = excluded.address, updated_at = excluded.updated_at, \
                     language = excluded.language \
                     RETURNING id",
                )
                .bind(&a.code).bind(&a.company).bind(&a.address).bind(now).bind(&a.language)
                .fetch_one(&mut *tx).await?;
                sqlx::query("DELETE FROM account_numbers WHERE account_id = $1")
                    .bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM account_contacts WHERE account_id = $1")
                    .bind(id).execute(&mut *tx).await?;
                for n in &a.numbers {
                    sqlx::query(
                        "INSERT INTO account_numbers (number, account_id) VALUES ($1, $2) \
                         ON CONFLICT (number) DO UPDATE SET account_id = excluded.account_id",
                    )
                    .bind(n).bind(id).execute(&mut *tx).await?;
                }
                for c in &a.contacts {
                    sqlx::query(
                        "INSERT INTO account_contacts (account_id, role, name, phone, email) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(id).bind(c.role.as_str()).bind(&c.name).bind(&c.phone).bind(&c.email)
                    .execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(accounts.len())
        })
    }

    /// Parses and imports an accounts CSV (see [`CSV_HEADER`]).
    pub async fn import_accounts_csv(
        &self,
        input: impl Read,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let accounts = parse_csv(input)?;
        self.upsert_accounts(&accounts, now).await
    }

    /// The account a caller's number is registered to, if any.
    pub async fn find_account_by_number(
        &self,
        number: &str,
    ) -> Result<Option<AccountRef>, StoreError> {
        let Some(n) = normalise_number(number) else {
            return Ok(None);
        };
        on_read!(&self.db, pool => {
            let row = sqlx::query(
                "SELECT a.id, a.code, a.company, a.language FROM account_numbers n JOIN accounts a ON a.id = n.account_id \
                 WHERE n.number = $1",
            )
            .bind(&n)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(r) => Ok(Some(AccountRef {
                    id: r.try_get("id")?,
                    code: r.try_get("code")?,
                    company: r.try_get("company")?,
                    language: r.try_get("language")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// An account with its numbers and contacts.
    pub async fn account(&self, code: &str) -> Result<Option<Account>, StoreError> {
        on_read!(&self.db, pool => {
            let Some(row) = sqlx::query("SELECT id, code, company, address, language FROM accounts WHERE code = $1")
                .bind(code).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let id: i64 = row.try_get("id")?;
            let numbers: Vec<String> = sqlx::query_scalar(
                "SELECT number FROM account_numbers WHERE account_id = $1 ORDER BY number",
            )
            .bind(id).fetch_all(pool).await?;
            let rows = sqlx::query(
                "SELECT role, name, phone, email FROM account_contacts WHERE account_id = $1 ORDER BY id",
            )
            .bind(id).fetch_all(pool).await?;
            let mut contacts = Vec::new();
            for r in &rows {
                let role: String = r.try_get("role")?;
                let role = match role.as_str() {
                    "administrative" => ContactRole::Administrative,
                    "technical" => ContactRole::Technical,
                    "billing" => ContactRole::Billing,
                    other => return Err(StoreError::Corrupt(format!("contact role \"{other}\""))),
                };
                contacts.push(Contact {
                    role,
                    name: r.try_get("name")?,
                    phone: r.try_get("phone")?,
                    email: r.try_get("email")?,
                });
            }
            Ok(Some(Account {
                code: row.try_get("code")?,
                company: row.try_get("company")?,
                address: row.try_get("address")?,
                numbers,
                contacts,
                language: row.try_get("language")?,
            }))
        })
    }
}
