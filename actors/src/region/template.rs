//! Preseed templates: which stored template serves a node (the most specific name, as MAAS
//! names them) and rendering it with minijinja. Pure: no store, no clock, no I/O.
//!
//! Templates are code from operators (and clusters), so every render is bounded: minijinja's
//! fuel bounds the instructions it runs, `MAX_RENDER_OUTPUT` what it writes. Where the render
//! runs (a bounded pool off the HTTP workers, with a deadline) is `render`'s business.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The name every lookup ends with when nothing more specific exists.
pub const GENERIC_TEMPLATE: &str = "generic";

/// Instructions one render may run (minijinja fuel). Real preseeds use a few thousand; two
/// million take about 50 ms in a release build and under a second in a debug build on a
/// loaded machine, so a hostile loop ends near the render deadline (before: a nested `range`
/// loop held both HTTP workers for 27 s). Raising it lets a hostile template hold a render
/// thread longer; lowering it may refuse a legitimately large loop.
pub const RENDER_FUEL: u64 = 2_000_000;

/// Bytes one render may write (1 MiB). A preseed is a few KiB; before this bound a 52-byte
/// template answered 400 MB. Note minijinja itself may build one string of up to 100 MB
/// (`"x" * n`) before it is written; that single value is its own bound.
pub const MAX_RENDER_OUTPUT: usize = 1024 * 1024;

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
    /// `Some` when the render hit a limit (fuel, output size, deadline), naming it.
    pub limit: Option<TemplateLimit>,
}

/// Which bound a render hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateLimit {
    /// `RENDER_FUEL` instructions ran out.
    Fuel,
    /// More than `MAX_RENDER_OUTPUT` bytes written.
    Output,
    /// The render did not finish within the render deadline.
    Deadline,
}

impl TemplateLimit {
    /// A sentence naming the limit and its value.
    pub fn describe(self) -> String {
        match self {
            TemplateLimit::Fuel => {
                format!("the render ran out of its fuel of {RENDER_FUEL} instructions")
            }
            TemplateLimit::Output => {
                format!("the render wrote more than {MAX_RENDER_OUTPUT} bytes")
            }
            TemplateLimit::Deadline => "the render did not finish within its deadline".to_owned(),
        }
    }
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
    bounded_render(name, &template, ctx)
}

/// Parses `source` and renders it once with `sample` under the render limits, with undefined
/// values allowed (sample data cannot know every key a cluster will send): the check an
/// edit passes before it is stored. Only a parse error or a limit fails it.
pub fn trial_render(
    name: &str,
    source: &str,
    sample: &PreseedContext,
) -> Result<(), TemplateError> {
    let mut env = environment();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    let template = env
        .template_from_named_str(name, source)
        .map_err(|e| template_error(name, &e))?;
    match bounded_render(name, &template, sample) {
        Err(e) if e.limit.is_some() => Err(e),
        _ => Ok(()),
    }
}

/// Bytes of an arrival check's error that are kept and shown.
pub const MAX_CHECK_ERROR: usize = 256;

/// The check a cluster's template passes on arrival, as an operator's edit does: it parses
/// and trial-renders with the sample node within the render limits. `Err` says why, in at
/// most `MAX_CHECK_ERROR` bytes of printable text (the sample holds no real secret).
pub fn check_on_arrival(name: &str, source: &str) -> Result<(), String> {
    trial_render(name, source, &sample_context()).map_err(|e| printable(&e.to_string()))
}

/// `text` with control characters as `?`, cut to `MAX_CHECK_ERROR` bytes on a character
/// boundary (an ellipsis marks the cut).
fn printable(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().map(|c| if c.is_control() { '?' } else { c }) {
        if out.len() + c.len_utf8() > MAX_CHECK_ERROR - '…'.len_utf8() {
            out.push('…');
            break;
        }
        out.push(c);
    }
    out
}

/// The sample node a trial render uses.
pub fn sample_context() -> PreseedContext {
    PreseedContext {
        preseed_type: "curtin".into(),
        hostname: "sample-node".into(),
        arch: "amd64".into(),
        subarch: "generic".into(),
        osystem: "ubuntu".into(),
        release: "jammy".into(),
        cluster: "sample-cluster".into(),
        data: BTreeMap::from([("license_key".to_owned(), "XXXXX-XXXXX".to_owned())]),
    }
}

/// Renders into a writer that refuses past `MAX_RENDER_OUTPUT`, with the environment's fuel.
fn bounded_render(
    name: &str,
    template: &minijinja::Template<'_, '_>,
    ctx: &PreseedContext,
) -> Result<String, TemplateError> {
    let mut out = CappedOutput::default();
    match template.render_captured_to(ctx, &mut out) {
        Ok(_) => String::from_utf8(out.bytes).map_err(|e| TemplateError {
            template: name.to_owned(),
            line: None,
            message: format!("rendered bytes are not UTF-8: {e}"),
            limit: None,
        }),
        Err(e) if out.overflowed => Err(TemplateError {
            limit: Some(TemplateLimit::Output),
            message: TemplateLimit::Output.describe(),
            ..template_error(name, &e)
        }),
        Err(e) => Err(template_error(name, &e)),
    }
}

/// The output buffer of a render: refuses the write that would take it over the bound.
#[derive(Default)]
struct CappedOutput {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDER_OUTPUT {
            self.overflowed = true;
            return Err(std::io::Error::other("render output limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn environment<'a>() -> minijinja::Environment<'a> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    // `debug()` would print the whole context, the license key in `data` included.
    env.remove_global("debug");
    env.set_fuel(Some(RENDER_FUEL));
    env
}

fn template_error(name: &str, err: &minijinja::Error) -> TemplateError {
    let message = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    let limit = (err.kind() == minijinja::ErrorKind::OutOfFuel).then_some(TemplateLimit::Fuel);
    let message = match limit {
        Some(limit) => limit.describe(),
        None => message,
    };
    TemplateError {
        template: name.to_owned(),
        line: err.line(),
        message,
        limit,
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
    fn a_hostile_loop_runs_out_of_fuel() {
        let source =
            "{% for a in range(100000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}ok";
        let started = std::time::Instant::now();
        let err = render_template("t", source, &node()).unwrap_err();
        assert_eq!(err.limit, Some(TemplateLimit::Fuel), "{err}");
        assert!(err.to_string().contains("fuel"), "{err}");
        eprintln!("out of fuel after {:?}", started.elapsed());
        assert_eq!(
            trial_render("t", source, &sample_context())
                .unwrap_err()
                .limit,
            Some(TemplateLimit::Fuel)
        );
    }

    #[test]
    fn a_huge_output_is_refused() {
        let source = r#"{% for i in range(4) %}{{ "x" * 1000000 }}{% endfor %}"#;
        let err = render_template("t", source, &node()).unwrap_err();
        assert_eq!(err.limit, Some(TemplateLimit::Output), "{err}");
        assert!(err.to_string().contains("1048576 bytes"), "{err}");
    }

    #[test]
    fn a_trial_render_allows_data_the_sample_lacks() {
        let source = "key={{ data.product_key }} host={{ hostname }}";
        assert_eq!(trial_render("t", source, &sample_context()), Ok(()));
        assert!(trial_render("t", "{% if %}", &sample_context()).is_err());
    }

    #[test]
    fn the_arrival_check_refuses_with_a_bounded_printable_error() {
        assert_eq!(
            check_on_arrival("t", "host={{ hostname }} {{ data.any }}"),
            Ok(())
        );
        let err = check_on_arrival("t", "{% if %}").unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
        let hostile = format!("{{% if %}}\x1b[31m{}", "{{ x".repeat(500));
        let name = format!("n\n\x1b{}", "é".repeat(400));
        let err = check_on_arrival(&name, &hostile).unwrap_err();
        assert!(err.len() <= MAX_CHECK_ERROR, "{} bytes", err.len());
        assert!(!err.chars().any(char::is_control), "{err:?}");
        assert!(err.ends_with('…'), "{err}");
        let fuel = "{% for a in range(100000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}";
        assert!(check_on_arrival("t", fuel).unwrap_err().contains("fuel"));
    }

    #[test]
    fn undefined_variables_fail_instead_of_rendering_empty() {
        let err =
            render_template("generic", "ok\nkey={{ data.license_key }}", &node()).unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
    }
}

#[cfg(test)]
#[path = "template_rules_tests.rs"]
mod rules_tests;
