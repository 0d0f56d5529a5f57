//! The CLI's domain commands: license keys, OS settings, nodes and preseeds, each a thin
//! call to the region API printed as a sorted, aligned table (or the API's JSON).

use anyhow::{Context, Result};
use clap::Subcommand;
use osmesh_api::license::{LicenseKeyRequest, LicenseKeyUpdate, LicenseKeyView};
use osmesh_api::nodes::{AllocateRequest, EnlistRequest, NodeView};
use osmesh_api::preseeds::{
    ClusterTemplateView, PreseedEdit, PreseedVersionView, PreseedView, RenderedPreseed,
    ResolveRequest,
};
use osmesh_api::settings::OsSettings;
use serde_json::{json, Value};
use std::path::PathBuf;

use crate::client::{call_json, call_typed, print_json, seg, send_typed, yes_no, ApiArgs};
use crate::table::Table;

#[derive(Subcommand)]
pub enum LicenseKeysCommand {
    /// Every stored key, masked.
    List,
    /// Add a key; a cluster that knows the release validates it first. The key is read from
    /// standard input (`--license-key -`) or OSMESH_LICENSE_KEY, never from the command line.
    Add {
        osystem: String,
        distro_series: String,
        /// `-`: read the key from standard input. Without it, OSMESH_LICENSE_KEY is used.
        #[arg(long)]
        license_key: Option<String>,
    },
    /// Replace the key of a release; validated like `add`, read like `add`.
    Update {
        osystem: String,
        distro_series: String,
        #[arg(long)]
        license_key: Option<String>,
    },
    Delete {
        osystem: String,
        distro_series: String,
    },
}

#[derive(Subcommand)]
pub enum SettingsCommand {
    Show,
    /// Set one or more OS settings; each is checked against what the clusters support.
    Set {
        #[arg(long)]
        default_osystem: Option<String>,
        #[arg(long)]
        default_distro_series: Option<String>,
        #[arg(long)]
        commissioning_distro_series: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum NodesCommand {
    List,
    /// Enlist a node on a cluster.
    Add {
        hostname: String,
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        arch: String,
        #[arg(long)]
        subarch: Option<String>,
        #[arg(long)]
        power_type: Option<String>,
        /// `-`: read the power parameters (a JSON object, passwords included) from standard
        /// input. Without it, OSMESH_POWER_PARAMETERS is used if set.
        #[arg(long)]
        power_parameters: Option<String>,
    },
    Delete {
        id: i64,
    },
    /// Allocate a ready node whose cluster holds the image.
    Allocate {
        #[arg(long)]
        osystem: String,
        #[arg(long)]
        distro_series: String,
        #[arg(long)]
        arch: String,
        #[arg(long)]
        hostname: Option<String>,
    },
    Release {
        id: i64,
    },
    /// Render the node's preseed of a type (the most specific template).
    Preseed {
        id: i64,
        #[arg(long = "type", default_value = "curtin")]
        preseed_type: String,
    },
}

#[derive(Subcommand)]
pub enum PreseedsCommand {
    /// Every preseed's current version and conflict flag.
    List,
    /// Every version of one preseed, oldest first.
    History { name: String },
    /// Store a new version from a file (`-` reads standard input).
    Edit {
        name: String,
        #[arg(long)]
        file: PathBuf,
        /// The version the edit is based on; defaults to the current version.
        #[arg(long)]
        based_on: Option<i32>,
    },
    /// End a conflict by keeping one side's version.
    Resolve {
        name: String,
        #[arg(long)]
        version: i32,
    },
    /// Template names clusters shipped that wait for an admin's approval before they serve
    /// any node (`--all`: every cluster template, with its state).
    Pending {
        #[arg(long)]
        all: bool,
    },
    /// Let what a cluster ships as NAME serve that cluster's own nodes.
    Approve {
        name: String,
        #[arg(long)]
        cluster: String,
    },
    /// Stop what a cluster ships as NAME from serving any node.
    Refuse {
        name: String,
        #[arg(long)]
        cluster: String,
    },
}

pub fn license_keys(api: &ApiArgs, command: LicenseKeysCommand) -> Result<()> {
    let path = "/api/v1/license-keys";
    let (keys, raw): (Vec<LicenseKeyView>, Value) = match command {
        LicenseKeysCommand::List => call_typed(api, "GET", path, None)?,
        LicenseKeysCommand::Add {
            osystem,
            distro_series,
            license_key,
        } => {
            let license_key = read_secret("license key", license_key, "OSMESH_LICENSE_KEY")?
                .context(
                "a license key is needed: --license-key - (standard input) or OSMESH_LICENSE_KEY",
            )?;
            let body = LicenseKeyRequest {
                osystem,
                distro_series,
                license_key: license_key.as_str().to_owned(),
            };
            one(send_typed(api, "POST", path, &body)?)
        }
        LicenseKeysCommand::Update {
            osystem,
            distro_series,
            license_key,
        } => {
            let license_key = read_secret("license key", license_key, "OSMESH_LICENSE_KEY")?
                .context(
                "a license key is needed: --license-key - (standard input) or OSMESH_LICENSE_KEY",
            )?;
            let body = LicenseKeyUpdate {
                license_key: license_key.as_str().to_owned(),
            };
            let path = format!("{path}/{}/{}", seg(&osystem), seg(&distro_series));
            one(send_typed(api, "PUT", &path, &body)?)
        }
        LicenseKeysCommand::Delete {
            osystem,
            distro_series,
        } => {
            call_json(
                api,
                "DELETE",
                &format!("{path}/{}/{}", seg(&osystem), seg(&distro_series)),
                None,
            )?;
            return done(
                api,
                &format!("deleted the key of {osystem}/{distro_series}"),
            );
        }
    };
    if api.json {
        return print_json(&raw);
    }
    let mut rows = keys;
    rows.sort_by(|a, b| (&a.osystem, &a.distro_series).cmp(&(&b.osystem, &b.distro_series)));
    let mut table = Table::new(["OSYSTEM", "RELEASE", "KEY", "VALIDATED BY", "VALIDATED AT"]);
    for k in rows {
        table.row(vec![
            k.osystem,
            k.distro_series,
            k.license_key,
            k.validated_by.to_string(),
            format_utc(k.validated_at_ms),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

pub fn settings(api: &ApiArgs, command: SettingsCommand) -> Result<()> {
    let path = "/api/v1/settings";
    let (settings, raw): (OsSettings, Value) = match command {
        SettingsCommand::Show => call_typed(api, "GET", path, None)?,
        SettingsCommand::Set {
            default_osystem,
            default_distro_series,
            commissioning_distro_series,
        } => {
            let update = OsSettings {
                default_osystem,
                default_distro_series,
                commissioning_distro_series,
            };
            send_typed(api, "PUT", path, &update)?
        }
    };
    if api.json {
        return print_json(&raw);
    }
    let mut table = Table::new(["SETTING", "VALUE"]);
    for (name, value) in [
        (
            "commissioning_distro_series",
            settings.commissioning_distro_series,
        ),
        ("default_distro_series", settings.default_distro_series),
        ("default_osystem", settings.default_osystem),
    ] {
        table.row(vec![name.into(), value.unwrap_or_else(|| "-".into())]);
    }
    print!("{}", table.render());
    Ok(())
}

pub fn nodes(api: &ApiArgs, command: NodesCommand) -> Result<()> {
    let path = "/api/v1/nodes";
    let (nodes, raw): (Vec<NodeView>, Value) = match command {
        NodesCommand::List => call_typed(api, "GET", path, None)?,
        NodesCommand::Add {
            hostname,
            cluster,
            arch,
            subarch,
            power_type,
            power_parameters,
        } => {
            let power_parameters: Option<Value> = read_secret(
                "power parameters",
                power_parameters,
                "OSMESH_POWER_PARAMETERS",
            )?
            .map(|p| serde_json::from_str(&p).context("the power parameters must be JSON"))
            .transpose()?;
            let body = EnlistRequest {
                hostname,
                arch,
                subarch,
                cluster: osmesh_core::ClusterId::new(cluster),
                system_id: None,
                power_type,
                power_parameters,
            };
            one(send_typed(api, "POST", path, &body)?)
        }
        NodesCommand::Delete { id } => {
            call_json(api, "DELETE", &format!("{path}/{id}"), None)?;
            return done(api, &format!("deleted node {id}"));
        }
        NodesCommand::Allocate {
            osystem,
            distro_series,
            arch,
            hostname,
        } => {
            let body = AllocateRequest {
                osystem,
                distro_series,
                arch,
                subarch: None,
                hostname,
            };
            one(send_typed(api, "POST", &format!("{path}/allocate"), &body)?)
        }
        NodesCommand::Release { id } => one(call_typed(
            api,
            "POST",
            &format!("{path}/{id}/release"),
            None,
        )?),
        NodesCommand::Preseed { id, preseed_type } => {
            return print_node_preseed(api, &format!("{path}/{id}"), &preseed_type)
        }
    };
    if api.json {
        return print_json(&raw);
    }
    print!("{}", nodes_table(nodes));
    Ok(())
}

/// The preseed rendered for a node: its text on stdout, which template made it on stderr.
fn print_node_preseed(api: &ApiArgs, node_path: &str, preseed_type: &str) -> Result<()> {
    let path = format!("{node_path}/preseed?type={}", seg(preseed_type));
    let (rendered, raw): (RenderedPreseed, Value) = call_typed(api, "GET", &path, None)?;
    if api.json {
        return print_json(&raw);
    }
    eprintln!(
        "# template {} version {} for {} ({}/{})",
        rendered.template,
        rendered.template_version,
        rendered.hostname,
        rendered.osystem,
        rendered.distro_series
    );
    print!("{}", rendered.content);
    Ok(())
}

fn nodes_table(mut rows: Vec<NodeView>) -> String {
    rows.sort_by_key(|n| n.id);
    let mut table = Table::new(["ID", "HOSTNAME", "ARCH", "CLUSTER", "STATUS", "OS"]);
    for n in rows {
        let os = match (&n.osystem, &n.distro_series) {
            (Some(os), Some(release)) => format!("{os}/{release}"),
            _ => "-".into(),
        };
        table.row(vec![
            n.id.to_string(),
            n.hostname,
            format!("{}/{}", n.arch, n.subarch),
            n.cluster.to_string(),
            n.status,
            os,
        ]);
    }
    table.render()
}

pub fn preseeds(api: &ApiArgs, command: PreseedsCommand) -> Result<()> {
    let path = "/api/v1/preseeds";
    let (list, raw): (Vec<PreseedView>, Value) = match command {
        PreseedsCommand::Pending { .. }
        | PreseedsCommand::Approve { .. }
        | PreseedsCommand::Refuse { .. } => return cluster_templates(api, command),
        PreseedsCommand::List => call_typed(api, "GET", path, None)?,
        PreseedsCommand::History { name } => {
            let (history, raw): (Vec<PreseedVersionView>, Value) =
                call_typed(api, "GET", &format!("{path}/{}/history", seg(&name)), None)?;
            if api.json {
                return print_json(&raw);
            }
            print!("{}", history_table(history));
            return Ok(());
        }
        PreseedsCommand::Edit {
            name,
            file,
            based_on,
        } => {
            let content = read_content(&file)?;
            let based_on = match based_on {
                Some(version) => version,
                None => {
                    let (current, _): (PreseedView, Value) =
                        call_typed(api, "GET", &format!("{path}/{}", seg(&name)), None)?;
                    current.current.version
                }
            };
            let body = PreseedEdit {
                content,
                based_on_version: based_on,
            };
            one(send_typed(
                api,
                "PUT",
                &format!("{path}/{}", seg(&name)),
                &body,
            )?)
        }
        PreseedsCommand::Resolve { name, version } => {
            let body = ResolveRequest { version };
            let path = format!("{path}/{}/resolve", seg(&name));
            one(send_typed(api, "POST", &path, &body)?)
        }
    };
    if api.json {
        return print_json(&raw);
    }
    let mut rows = list;
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let mut table = Table::new(["NAME", "VERSION", "ORIGIN", "OSYSTEM", "CONFLICT"]);
    for p in rows {
        table.row(vec![
            p.name,
            p.current.version.to_string(),
            origin(&p.current),
            p.current.osystem.unwrap_or_else(|| "-".into()),
            p.conflict.map_or_else(
                || yes_no(false).into(),
                |c| {
                    format!(
                        "yes: operator v{} vs cluster v{}",
                        c.operator_version, c.cluster_version
                    )
                },
            ),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

/// `preseeds pending`, `approve` and `refuse`: each cluster's templates and an admin's word.
fn cluster_templates(api: &ApiArgs, command: PreseedsCommand) -> Result<()> {
    let path = "/api/v1/cluster-templates";
    let decide = |name: String, cluster: String, verb: &str| {
        let path = format!("{path}/{}/{}/{verb}", seg(&cluster), seg(&name));
        call_typed::<ClusterTemplateView>(api, "POST", &path, None).map(one)
    };
    let (list, raw): (Vec<ClusterTemplateView>, Value) = match command {
        PreseedsCommand::Pending { all } => {
            let (list, raw): (Vec<ClusterTemplateView>, Value) =
                call_typed(api, "GET", path, None)?;
            if api.json {
                return print_json(&raw);
            }
            let list = list
                .into_iter()
                .filter(|t| all || t.state == "pending")
                .collect();
            (list, Value::Null)
        }
        PreseedsCommand::Approve { name, cluster } => decide(name, cluster, "approve")?,
        PreseedsCommand::Refuse { name, cluster } => decide(name, cluster, "refuse")?,
        _ => unreachable!("only cluster template commands come here"),
    };
    if api.json {
        return print_json(&raw);
    }
    print!("{}", cluster_templates_table(list));
    Ok(())
}

fn cluster_templates_table(mut list: Vec<ClusterTemplateView>) -> String {
    list.sort_by(|a, b| (&a.cluster, &a.name).cmp(&(&b.cluster, &b.name)));
    let mut table = Table::new(["CLUSTER", "NAME", "STATE", "VERSION", "FIRST SEEN", "ERROR"]);
    for t in list {
        table.row(vec![
            t.cluster.to_string(),
            t.name,
            t.state,
            t.version.map_or("-".into(), |v| v.to_string()),
            format_utc(t.first_seen_ms),
            t.error.unwrap_or_else(|| "-".into()),
        ]);
    }
    table.render()
}

fn history_table(mut history: Vec<PreseedVersionView>) -> String {
    history.sort_by_key(|v| v.version);
    let mut table = Table::new(["VERSION", "ORIGIN", "PARENT", "CREATED", "SHA256"]);
    for v in history {
        table.row(vec![
            v.version.to_string(),
            origin(&v),
            v.parent_version.map_or("-".into(), |p| p.to_string()),
            format_utc(v.created_at_ms),
            v.content_hash.chars().take(12).collect(),
        ]);
    }
    table.render()
}

fn origin(v: &PreseedVersionView) -> String {
    match &v.origin_cluster {
        Some(cluster) => format!("{} {cluster}", v.origin),
        None => v.origin.clone(),
    }
}

fn read_content(file: &PathBuf) -> Result<String> {
    if file.as_os_str() == "-" {
        return std::io::read_to_string(std::io::stdin()).context("cannot read standard input");
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// A secret from standard input (`flag` is `-`) or the environment variable `env`; never
/// from the command line itself, where every local user could read it in the process list.
pub fn read_secret(
    what: &str,
    flag: Option<String>,
    env: &str,
) -> Result<Option<zeroize::Zeroizing<String>>> {
    match flag.as_deref() {
        Some("-") => {
            let text = zeroize::Zeroizing::new(
                std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?,
            );
            Ok(Some(zeroize::Zeroizing::new(text.trim().to_owned())))
        }
        Some(_) => anyhow::bail!(
            "a {what} is not taken on the command line (every local user can read it there): pass - and write it to standard input, or set {env}"
        ),
        None => Ok(std::env::var(env)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| zeroize::Zeroizing::new(v.trim().to_owned()))),
    }
}

/// A single answer as a one-element list, so one table shows it.
fn one<T>((item, raw): (T, Value)) -> (Vec<T>, Value) {
    (vec![item], raw)
}

fn done(api: &ApiArgs, message: &str) -> Result<()> {
    if api.json {
        return print_json(&json!({ "ok": true }));
    }
    println!("{message}");
    Ok(())
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC` (civil-from-days, proleptic Gregorian).
pub fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
