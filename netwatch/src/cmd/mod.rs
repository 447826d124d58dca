//! One module per user-facing command.

pub mod check;
pub mod diff;
pub mod docs;
pub mod events;
mod netns;
pub mod serve;
pub mod snapshot;

/// The filter of a command: its shorthand flags (`base`), `--filter EXPR`
/// and trailing words, all of which must hold. A parse error names the
/// offending word, before anything is loaded.
fn filter_of(
    option: &Option<String>,
    words: &[String],
    base: crate::filter::Filter,
) -> anyhow::Result<crate::filter::Filter> {
    let bad = |e: crate::filter::ParseError| anyhow::anyhow!("bad filter expression: {e}");
    let f = base.with_words(words).map_err(bad)?;
    option.iter().try_fold(f, |f, text| f.with_words(std::slice::from_ref(text)).map_err(bad))
}

/// Says each warning on stderr, the way every command does.
fn warn_all(warnings: impl IntoIterator<Item = impl std::fmt::Display>) {
    warnings.into_iter().for_each(|w| eprintln!("netwatch: warning: {w}"));
}
