//! The bounds of a render and the arrival check's text, which `cargo mutants` found
//! unguarded by `template.rs`'s own tests (see docs/TESTING.md, "Mutation testing").

use super::*;

#[test]
fn a_trial_render_fails_only_on_a_parse_error_or_a_limit() {
    // A runtime error that is no limit: the strict render refuses it, the trial lets it pass
    // (sample data cannot know what a real node's render will meet).
    let source = "{{ \"a\" + 1 }}";
    let strict = render_template("t", source, &sample_context()).unwrap_err();
    assert_eq!(strict.limit, None, "{strict}");
    assert_eq!(trial_render("t", source, &sample_context()), Ok(()));
}

#[test]
fn a_render_may_write_exactly_its_output_bound() {
    let exact = format!("{{{{ \"x\" * {MAX_RENDER_OUTPUT} }}}}");
    let out = render_template("t", &exact, &sample_context()).expect("at the bound");
    assert_eq!(out.len(), MAX_RENDER_OUTPUT);
    let over = format!("{{{{ \"x\" * {} }}}}", MAX_RENDER_OUTPUT + 1);
    let err = render_template("t", &over, &sample_context()).unwrap_err();
    assert_eq!(err.limit, Some(TemplateLimit::Output), "{err}");
}

#[test]
fn the_output_bound_counts_every_write_together() {
    // Two writes far under the bound together: both kept.
    let source = "{{ \"x\" * 2000 }}{{ \"y\" * 1000 }}";
    let out = render_template("t", source, &sample_context()).expect("3000 bytes");
    assert_eq!(out.len(), 3000);
    // Writes each under the bound, over it together: refused.
    let half = MAX_RENDER_OUTPUT / 2 + 1;
    let source = format!("{{{{ \"x\" * {half} }}}}{{{{ \"y\" * {half} }}}}");
    let err = render_template("t", &source, &sample_context()).unwrap_err();
    assert_eq!(err.limit, Some(TemplateLimit::Output), "{err}");
}

#[test]
fn every_limit_describes_itself_with_its_value() {
    assert_eq!(
        TemplateLimit::Fuel.describe(),
        format!("the render ran out of its fuel of {RENDER_FUEL} instructions")
    );
    assert_eq!(
        TemplateLimit::Output.describe(),
        "the render wrote more than 1048576 bytes"
    );
    assert_eq!(
        TemplateLimit::Deadline.describe(),
        "the render did not finish within its deadline"
    );
}

#[test]
fn printable_text_is_cut_at_exactly_its_bound_with_an_ellipsis() {
    assert_eq!(printable("a\nb\x1b[0m\tc"), "a?b?[0m?c");
    let short = "x".repeat(MAX_CHECK_ERROR - '…'.len_utf8());
    assert_eq!(printable(&short), short, "fits: no cut");
    let long = "x".repeat(1_000);
    let cut = printable(&long);
    assert_eq!(cut.len(), MAX_CHECK_ERROR, "{cut}");
    assert_eq!(
        cut,
        format!("{}…", "x".repeat(MAX_CHECK_ERROR - '…'.len_utf8()))
    );
    // A character that would straddle the bound is left out whole.
    let wide = "é".repeat(1_000);
    let cut = printable(&wide);
    assert!(cut.len() <= MAX_CHECK_ERROR && cut.ends_with('…'), "{cut}");
    assert_eq!(cut.chars().count(), (MAX_CHECK_ERROR - 3) / 2 + 1);
}

#[test]
fn a_template_error_names_its_line_and_a_fuel_limit() {
    let err = render_template("t", "a\nb\n{{ nope }}", &sample_context()).unwrap_err();
    assert_eq!(
        (err.template.as_str(), err.line, err.limit),
        ("t", Some(3), None)
    );
    assert!(err.message.contains("undefined"), "{err}");
    assert_eq!(
        err.to_string(),
        format!("template \"t\" line 3: {}", err.message)
    );
}
