//! Preseed templates: which stored template serves a node (the most specific name, as MAAS
//! names them) and rendering it with minijinja. Pure: no store, no clock, no I/O.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The name every lookup ends with when nothing more specific exists.
pub const GENERIC_TEMPLATE: &str = "generic";

/// What a template is looked up and rendered for. `Debug` shows `data`'s keys, never its
/// values (a license key is one; `masked.rs`).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct PreseedContext {
    pub preseed_type: String,
    pub hostname: String,
    pub arch: String,
    pub subarch: String,
    pub osystem: String,
    pub release: String,
    pub cluster: String,
    /// The OS-specific data the node's cluster returned (`GetPreseedData`), e.g. a Windows
    /// `license_key`. Templates read it as `data.<key>`.
    pub data: BTreeMap<String, String>,
}

/// A template that does not parse or render: which one, where, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("template {template:?}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct TemplateError {
    pub template: String,
    pub line: Option<usize>,
    pub message: String,
}

/// The template names that could serve `ctx`, most specific first:
/// `{type}_{os}_{arch}_{subarch}_{release}_{hostname}`, then dropping one part at a time
/// from the right down to `{type}`, then `generic`.
pub fn template_candidates(ctx: &PreseedContext) -> Vec<String> {
    let parts = [
        ctx.osystem.as_str(),
        ctx.arch.as_str(),
        ctx.subarch.as_str(),
        ctx.release.as_str(),
        ctx.hostname.as_str(),
    ];
    let mut names: Vec<String> = (0..=parts.len())
        .rev()
        .map(|n| {
            std::iter::once(ctx.preseed_type.as_str())
                .chain(parts[..n].iter().copied())
                .collect::<Vec<_>>()
                .join("_")
        })
        .collect();
    names.push(GENERIC_TEMPLATE.to_owned());
    names
}

/// The most specific of `available` that serves `ctx`, or `None`.
pub fn most_specific(ctx: &PreseedContext, available: &BTreeSet<String>) -> Option<String> {
    template_candidates(ctx)
        .into_iter()
        .find(|name| available.contains(name))
}

/// Parses `source` without rendering it, so an operator's edit with a syntax error is
/// refused before it becomes a version.
pub fn check_template(name: &str, source: &str) -> Result<(), TemplateError> {
    environment()
        .template_from_named_str(name, source)
        .map(|_| ())
        .map_err(|e| template_error(name, &e))
}

/// Renders `source` with `ctx`. Undefined variables are errors (strict), so a template that
/// needs data the cluster did not send fails loudly instead of rendering an empty value.
pub fn render_template(
    name: &str,
    source: &str,
    ctx: &PreseedContext,
) -> Result<String, TemplateError> {
    let env = environment();
    let template = env
        .template_from_named_str(name, source)
        .map_err(|e| template_error(name, &e))?;
    template.render(ctx).map_err(|e| template_error(name, &e))
}

fn environment<'a>() -> minijinja::Environment<'a> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    // `debug()` would print the whole context, the license key in `data` included.
    env.remove_global("debug");
    env
}

fn template_error(name: &str, err: &minijinja::Error) -> TemplateError {
    let message = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    TemplateError {
        template: name.to_owned(),
        line: err.line(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> PreseedContext {
        PreseedContext {
            preseed_type: "curtin".into(),
            hostname: "n1".into(),
            arch: "amd64".into(),
            subarch: "generic".into(),
            osystem: "ubuntu".into(),
            release: "jammy".into(),
            cluster: "cluster-a".into(),
            data: BTreeMap::new(),
        }
    }

    fn check(available: &[&str], expected: Option<&str>) {
        let set = available.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            most_specific(&node(), &set).as_deref(),
            expected,
            "{available:?}"
        );
    }

    #[test]
    fn candidates_run_from_node_to_generic() {
        assert_eq!(
            template_candidates(&node()),
            [
                "curtin_ubuntu_amd64_generic_jammy_n1",
                "curtin_ubuntu_amd64_generic_jammy",
                "curtin_ubuntu_amd64_generic",
                "curtin_ubuntu_amd64",
                "curtin_ubuntu",
                "curtin",
                "generic",
            ]
        );
    }

    #[test]
    fn the_most_specific_available_template_wins() {
        check(&[], None);
        check(&["generic"], Some("generic"));
        check(&["generic", "curtin"], Some("curtin"));
        check(
            &["curtin", "curtin_ubuntu_amd64"],
            Some("curtin_ubuntu_amd64"),
        );
        check(
            &["curtin_ubuntu", "curtin_ubuntu_amd64_generic_jammy_n1"],
            Some("curtin_ubuntu_amd64_generic_jammy_n1"),
        );
        // Another node's, another type's and another OS's templates never serve this node.
        check(&["curtin_ubuntu_amd64_generic_jammy_n2"], None);
        check(&["commissioning", "curtin_windows"], None);
    }

    #[test]
    fn renders_node_and_cluster_data() {
        let mut ctx = node();
        ctx.data.insert("license_key".into(), "ABCDE".into());
        let out = render_template(
            "t",
            "host={{ hostname }} os={{ osystem }}/{{ release }} on {{ cluster }} key={{ data.license_key }}\n",
            &ctx,
        )
        .unwrap();
        assert_eq!(out, "host=n1 os=ubuntu/jammy on cluster-a key=ABCDE\n");
    }

    #[test]
    fn syntax_errors_name_the_template_and_line() {
        let err = check_template("curtin_ubuntu", "line one\n{% if %}\n").unwrap_err();
        assert_eq!(err.template, "curtin_ubuntu");
        assert_eq!(err.line, Some(2));
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn undefined_variables_fail_instead_of_rendering_empty() {
        let err =
            render_template("generic", "ok\nkey={{ data.license_key }}", &node()).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
    }
}
