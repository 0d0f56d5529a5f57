//! The CLI's client of the region API: fetch JSON, print a sorted, aligned table or the JSON.

use anyhow::{Context, Result};
use osmesh_api::osystems::{ClusterStatus, OsystemsAnswer};
use serde::de::DeserializeOwned;

use crate::table::Table;

#[derive(clap::Args)]
pub struct ApiArgs {
    /// The region's HTTP API.
    #[arg(
        long,
        env = "OSMESH_API",
        default_value = "http://127.0.0.1:5240",
        global = true
    )]
    pub api: String,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// For an https:// API: trust the CA certificates in this PEM file instead of the
    /// system's roots.
    #[arg(long, env = "OSMESH_CA_FILE", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
    /// For an https:// API: trust exactly the server certificate with this SHA-256
    /// fingerprint (regiond logs it at start).
    #[arg(long, env = "OSMESH_PIN_SHA256", global = true)]
    pub pin_sha256: Option<String>,
}

/// Sends `method` to `path` with an optional JSON body; the decoded answer (`null` for an
/// empty one). A refusal becomes an error carrying the API's code and message. The token
/// comes from `OSMESH_TOKEN`, else from what `osmesh login` (or the demo) saved for this API.
pub fn call_json(
    api: &ApiArgs,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value> {
    let url = format!("{}{path}", api.api.trim_end_matches('/'));
    let agent = crate::tls::agent(api.ca_file.as_deref(), api.pin_sha256.as_deref())?;
    let mut request = agent.request(method, &url);
    let token = crate::credentials::token_for(&api.api)?;
    if let Some(token) = &token {
        request = request.set("Authorization", &format!("Bearer {}", token.as_str()));
    }
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    match result {
        Ok(response) => {
            let text = response
                .into_string()
                .with_context(|| format!("cannot read the answer from {url}"))?;
            if text.is_empty() {
                return Ok(serde_json::Value::Null);
            }
            serde_json::from_str(&text).with_context(|| format!("bad JSON from {url}"))
        }
        Err(ureq::Error::Status(status, response)) => {
            let body: serde_json::Value = response.into_json().unwrap_or_default();
            let hint = match (status, &token) {
                (401, None) => "; set OSMESH_TOKEN or run `osmesh login` (a token comes from `regiond token create`)",
                _ => "",
            };
            match (body["code"].as_str(), body["message"].as_str()) {
                (Some(code), Some(message)) => anyhow::bail!("{status} {code}: {message}{hint}"),
                _ => anyhow::bail!("{url} answered {status}: {body}{hint}"),
            }
        }
        Err(err) => Err(err).with_context(|| format!("cannot reach the region API at {}", api.api)),
    }
}

/// `segment` percent-encoded for one path segment (a name with `/`, `?` or `%` stays one).
pub fn seg(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, PATH_SEGMENT).to_string()
}

/// Everything but RFC 3986's unreserved characters is encoded.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `call_json` decoded into `T`, with the raw JSON beside it for `--json`.
pub fn call_typed<T: DeserializeOwned>(
    api: &ApiArgs,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(T, serde_json::Value)> {
    let value = call_json(api, method, path, body)?;
    let typed = serde_json::from_value(value.clone())
        .with_context(|| format!("unexpected answer from {path}"))?;
    Ok((typed, value))
}

/// Sends `body`, one of the API's request types (`osmesh-api`), and reads the answer as `T`.
pub fn send_typed<T: DeserializeOwned>(
    api: &ApiArgs,
    method: &str,
    path: &str,
    body: &impl serde::Serialize,
) -> Result<(T, serde_json::Value)> {
    let body = serde_json::to_value(body).context("cannot encode the request")?;
    call_typed(api, method, path, Some(&body))
}

pub fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn clusters(api: &ApiArgs) -> Result<()> {
    let (clusters, raw): (Vec<ClusterStatus>, _) =
        call_typed(api, "GET", "/api/v1/clusters", None)?;
    if api.json {
        return print_json(&raw);
    }
    let mut table = Table::new(["ID", "NAME", "CONNECTED", "IMAGES", "SNAPSHOT AGE"]);
    for c in clusters {
        table.row(vec![
            c.id.to_string(),
            c.name,
            yes_no(c.connected).into(),
            c.image_count.to_string(),
            c.snapshot_age_ms.map_or("-".into(), format_age),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// `osmesh clusters enroll|revoke|remove NAME` (admin).
#[derive(clap::Subcommand)]
pub enum ClustersCommand {
    /// Enroll a cluster: prints a one-time token (valid 24 h) for `clusterd --enroll-token-file`.
    Enroll { name: String },
    /// Revoke a cluster: its link is cut at once and it is refused until enrolled again.
    Revoke { name: String },
    /// Delete a disconnected cluster, its snapshot and its enrollment.
    Remove { name: String },
}

pub fn cluster_admin(api: &ApiArgs, command: ClustersCommand) -> Result<()> {
    let raw = match &command {
        ClustersCommand::Enroll { name } => call_json(
            api,
            "POST",
            &format!("/api/v1/clusters/{}/enroll", seg(name)),
            None,
        )?,
        ClustersCommand::Revoke { name } => call_json(
            api,
            "POST",
            &format!("/api/v1/clusters/{}/revoke", seg(name)),
            None,
        )?,
        ClustersCommand::Remove { name } => call_json(
            api,
            "DELETE",
            &format!("/api/v1/clusters/{}", seg(name)),
            None,
        )?,
    };
    if api.json {
        return print_json(&raw);
    }
    let text = |key: &str| {
        raw.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("-")
            .to_owned()
    };
    match command {
        ClustersCommand::Enroll { name } => {
            println!(
                "enrollment token for {name} (shown once, valid 24 h; CA sha256 {}):",
                text("ca_sha256")
            );
            println!("{}", text("token"));
            println!("on the cluster: write it to a file (mode 0600) and start");
            println!("  clusterd --name {name} --state-dir DIR --enroll-token-file FILE --region ADDR ...");
        }
        ClustersCommand::Revoke { name } => {
            let cut = raw
                .get("link_closed")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            println!(
                "revoked {name}{}",
                if cut { "; its link was closed" } else { "" }
            );
        }
        ClustersCommand::Remove { name } => println!("removed {name}"),
    }
    Ok(())
}

pub fn osystems(api: &ApiArgs, live: bool, timeout_ms: Option<u64>) -> Result<()> {
    let mut path = String::from("/api/v1/osystems");
    if live {
        path.push_str("?live=true");
        if let Some(ms) = timeout_ms {
            path.push_str(&format!("&timeout_ms={ms}"));
        }
    }
    let (answer, raw): (OsystemsAnswer, _) = call_typed(api, "GET", &path, None)?;
    if api.json {
        return print_json(&raw);
    }
    print!("{}", render_osystems(&answer));
    Ok(())
}

pub fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A human-readable age: `850ms`, `12s`, `3m04s`, `2h05m`.
pub fn format_age(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The OS view as a table (one row per OS release), then who answered and how old each part is.
pub fn render_osystems(answer: &OsystemsAnswer) -> String {
    let mut table = Table::new([
        "OSYSTEM",
        "RELEASE",
        "TITLE",
        "SUPPORTED BY",
        "AVAILABLE (ARCH: CLUSTERS)",
    ]);
    for os in &answer.view.osystems {
        for release in &os.releases {
            let default = os.default_release.as_deref() == Some(release.name.as_str());
            let mark = if default { " *" } else { "" };
            let eol = if release.end_of_life {
                " (end of life)"
            } else {
                ""
            };
            let supported: Vec<_> = release.supported_by.iter().map(|c| c.to_string()).collect();
            table.row(vec![
                os.name.clone(),
                format!("{}{mark}", release.name),
                format!("{}{eol}", release.title),
                supported.join(","),
                availability(release),
            ]);
        }
    }
    let mut out = table.render();
    out.push_str("\n* default release\n");
    let source = match answer.source {
        osmesh_api::osystems::ReadPath::Cached => "cached snapshots",
        osmesh_api::osystems::ReadPath::Live => "live fan-out",
    };
    out.push_str(&format!("source: {source}"));
    if let (Some(deadline), Some(elapsed)) = (answer.deadline_ms, answer.elapsed_ms) {
        out.push_str(&format!(
            " (answered in {elapsed} ms, deadline {deadline} ms)"
        ));
    }
    out.push('\n');
    out.push('\n');
    out.push_str(&render_parts(&answer.clusters));
    for conflict in &answer.view.conflicts {
        out.push_str(&render_conflict(conflict));
    }
    out
}

/// Where a release is available, by arch; last-known (disconnected) holders said as such
/// (issue #16), and `-` when nowhere.
fn availability(release: &osmesh_core::mesh::MeshRelease) -> String {
    let names = |clusters: &std::collections::BTreeMap<osmesh_core::ClusterId, _>| {
        clusters
            .keys()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut parts: Vec<String> = release
        .available
        .iter()
        .map(|(arch, clusters)| format!("{arch}: {}", names(clusters)))
        .collect();
    parts.extend(
        release
            .last_known
            .iter()
            .map(|(arch, clusters)| format!("{arch}: {} (last known)", names(clusters))),
    );
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

/// Each cluster's part of an answer: connected, how old, answered or why not.
fn render_parts(parts: &[osmesh_api::osystems::ClusterPart]) -> String {
    let mut clusters = Table::new(["CLUSTER", "CONNECTED", "AGE", "ANSWER"]);
    for part in parts {
        clusters.row(vec![
            part.cluster.to_string(),
            yes_no(part.connected).into(),
            part.age_ms.map_or("-".into(), format_age),
            part.no_answer
                .as_ref()
                .map_or("answered".into(), |reason| format!("no answer: {reason}")),
        ]);
    }
    clusters.render()
}

/// One line per conflict: which value was chosen, and who said what.
fn render_conflict(conflict: &osmesh_core::mesh::Conflict) -> String {
    let subject = match &conflict.release {
        Some(release) => format!("{}/{release}", conflict.osystem),
        None => conflict.osystem.clone(),
    };
    let values: Vec<_> = conflict
        .values
        .iter()
        .map(|v| {
            let clusters: Vec<_> = v.clusters.iter().map(|c| c.to_string()).collect();
            format!(
                "{} ({})",
                v.value.as_deref().unwrap_or("none"),
                clusters.join(",")
            )
        })
        .collect();
    format!(
        "conflict: {subject} {:?}: chose {}; clusters said {}\n",
        conflict.field,
        conflict.chosen.as_deref().unwrap_or("none"),
        values.join(" vs ")
    )
}
