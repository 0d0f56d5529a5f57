//! The CLI's access commands: `osmesh login`, `osmesh tokens` and `osmesh audit`.

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::Value;

use crate::client::{call_json, print_json, seg, send_typed, ApiArgs};
use crate::domain::format_utc;
use crate::table::Table;

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Every token: name, role, creator, created, last used, expiry, revocation.
    List,
    /// Create a token and print it once (only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// reader, operator or admin.
        #[arg(long)]
        role: String,
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke the live token of this name, effective on its next request.
    Revoke { name: String },
}

/// Checks the token read from standard input (or OSMESH_TOKEN) against the API and saves it
/// for this API URL in the credentials file (mode 0600).
pub fn login(api: &ApiArgs) -> Result<()> {
    let token = match std::env::var("OSMESH_TOKEN") {
        Ok(token) if !token.trim().is_empty() => zeroize::Zeroizing::new(token.trim().to_owned()),
        _ => {
            eprintln!("paste the token (from `regiond token create` or `osmesh tokens create`), then Enter:");
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read standard input")?;
            zeroize::Zeroizing::new(line.trim().to_owned())
        }
    };
    anyhow::ensure!(!token.is_empty(), "no token given");
    std::env::set_var("OSMESH_TOKEN", token.as_str());
    let me = call_json(api, "GET", "/api/v1/whoami", None)
        .context("the region did not accept the token")?;
    std::env::remove_var("OSMESH_TOKEN");
    let path = crate::credentials::save(&api.api, &token)?;
    println!(
        "logged in to {} as {} ({}); token saved in {}",
        api.api,
        me["name"].as_str().unwrap_or("?"),
        me["role"].as_str().unwrap_or("?"),
        path.display()
    );
    Ok(())
}

pub fn tokens(api: &ApiArgs, command: TokensCommand) -> Result<()> {
    let path = "/api/v1/tokens";
    let raw = match command {
        TokensCommand::List => call_json(api, "GET", path, None)?,
        TokensCommand::Create {
            name,
            role,
            expires_in_days,
        } => {
            let body = osmesh_api::tokens::CreateToken {
                name: name.clone(),
                role: role.clone(),
                expires_in_secs: expires_in_days.map(|d| u64::from(d) * 86_400),
            };
            let (created, _): (Value, Value) = send_typed(api, "POST", path, &body)?;
            if api.json {
                return print_json(&created);
            }
            eprintln!("created {role} token {name:?}; it is shown once, store it now:");
            println!("{}", created["token"].as_str().unwrap_or_default());
            return Ok(());
        }
        TokensCommand::Revoke { name } => {
            call_json(api, "DELETE", &format!("{path}/{}", seg(&name)), None)?
        }
    };
    if api.json {
        return print_json(&raw);
    }
    let rows: Vec<Value> = match raw {
        Value::Array(rows) => rows,
        one => vec![one],
    };
    let time = |v: &Value| v.as_i64().map_or("-".into(), format_utc);
    let mut table = Table::new([
        "NAME",
        "ROLE",
        "CREATED BY",
        "CREATED",
        "LAST USED",
        "EXPIRES",
        "REVOKED",
    ]);
    for t in rows {
        table.row(vec![
            t["name"].as_str().unwrap_or_default().into(),
            t["role"].as_str().unwrap_or_default().into(),
            t["created_by"].as_str().unwrap_or_default().into(),
            time(&t["created_at_ms"]),
            time(&t["last_used_ms"]),
            time(&t["expires_at_ms"]),
            time(&t["revoked_at_ms"]),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// The audit log, newest first.
pub fn audit(
    api: &ApiArgs,
    object: Option<String>,
    token: Option<String>,
    limit: u32,
    before_id: Option<i64>,
) -> Result<()> {
    let mut query = vec![format!("limit={limit}")];
    if let Some(object) = object {
        query.push(format!("object={}", seg(&object)));
    }
    if let Some(token) = token {
        query.push(format!("token={}", seg(&token)));
    }
    if let Some(before) = before_id {
        query.push(format!("before_id={before}"));
    }
    let raw = call_json(
        api,
        "GET",
        &format!("/api/v1/audit?{}", query.join("&")),
        None,
    )?;
    if api.json {
        return print_json(&raw);
    }
    let mut table = Table::new([
        "ID", "TIME", "TOKEN", "ROLE", "METHOD", "OBJECT", "STATUS", "CLIENT",
    ]);
    for e in raw["entries"].as_array().into_iter().flatten() {
        table.row(vec![
            e["id"].to_string(),
            e["at_ms"].as_i64().map_or("-".into(), format_utc),
            e["token_name"].as_str().unwrap_or("-").into(),
            e["role"].as_str().unwrap_or("-").into(),
            e["method"].as_str().unwrap_or_default().into(),
            e["object"].as_str().unwrap_or_default().into(),
            format!(
                "{} {}",
                e["status"],
                e["outcome"].as_str().unwrap_or_default()
            ),
            e["client"].as_str().unwrap_or_default().into(),
        ]);
    }
    print!("{}", table.render());
    if let Some(next) = raw["next_before_id"].as_i64() {
        println!("more: --before-id {next}");
    }
    Ok(())
}
