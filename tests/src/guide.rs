//! The deployment guide's snippets, read from `docs/deployment.md` so that the tests use
//! exactly the text administrators copy, and a guide that drifts from what works fails
//! the suite.
//!
//! Every fenced code block in the guide is preceded by a marker line
//! `<!-- snippet: NAME -->`; [`snippet`] returns the block's text by that name and panics
//! if the marker is missing or used twice, and [`unmarked_blocks`] lists blocks without a
//! marker (which the tests refuse, so none can slip in untested).

use std::path::PathBuf;

/// The checkout's root directory (where `docs/`, `packaging/` and `scripts/` are).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .to_path_buf()
}

/// `docs/deployment.md`.
pub fn guide_path() -> PathBuf {
    workspace_root().join("docs").join("deployment.md")
}

/// The fleet's deployment guide, `docs/fleet.md` (its snippets are read with
/// [`snippet_in`]).
pub fn fleet_guide_text() -> String {
    let p = workspace_root().join("docs").join("fleet.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// The guide's text.
pub fn guide_text() -> String {
    let p = guide_path();
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// One fenced block of a Markdown text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The marker's name, if the line before the fence is `<!-- snippet: NAME -->`.
    pub name: Option<String>,
    /// The 1-based line number of the opening fence.
    pub line: usize,
    /// The lines between the fences, each ending in `\n`.
    pub text: String,
}

fn marker_name(line: &str) -> Option<String> {
    line.trim()
        .strip_prefix("<!-- snippet:")?
        .strip_suffix("-->")
        .map(|n| n.trim().to_owned())
}

/// Every fenced block (```` ``` ```` or `~~~`) of `markdown`, in order.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        let fence = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f));
        let Some(fence) = fence else {
            i += 1;
            continue;
        };
        let name = i.checked_sub(1).and_then(|p| marker_name(lines[p]));
        let start = i;
        let mut text = String::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with(fence) {
            text.push_str(lines[i]);
            text.push('\n');
            i += 1;
        }
        assert!(
            i < lines.len(),
            "the code block opened on line {} is never closed",
            start + 1
        );
        out.push(Block {
            name,
            line: start + 1,
            text,
        });
        i += 1;
    }
    out
}

/// The text of the block marked `<!-- snippet: NAME -->` in `markdown`.
pub fn snippet_in(markdown: &str, name: &str) -> String {
    let found: Vec<Block> = blocks(markdown)
        .into_iter()
        .filter(|b| b.name.as_deref() == Some(name))
        .collect();
    match found.as_slice() {
        [one] => one.text.clone(),
        [] => panic!(
            "the deployment guide has no code block marked `<!-- snippet: {name} -->` \
             right before it"
        ),
        _ => panic!(
            "the deployment guide marks {} code blocks as {name:?}",
            found.len()
        ),
    }
}

/// The text of the guide's block marked `<!-- snippet: NAME -->`.
pub fn snippet(name: &str) -> String {
    snippet_in(&guide_text(), name)
}

/// The blocks of the guide that have no marker.
pub fn unmarked_blocks() -> Vec<Block> {
    blocks(&guide_text())
        .into_iter()
        .filter(|b| b.name.is_none())
        .collect()
}

/// The names of all marked blocks of the guide, in order.
pub fn snippet_names() -> Vec<String> {
    blocks(&guide_text())
        .into_iter()
        .filter_map(|b| b.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "text\n<!-- snippet: one -->\n```\na b\nc\n```\n\n```sh\nx\n```\n";

    #[test]
    fn finds_marked_blocks_verbatim() {
        assert_eq!(snippet_in(DOC, "one"), "a b\nc\n");
        let all = blocks(DOC);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].name, None);
        assert_eq!(all[1].line, 8);
    }

    #[test]
    #[should_panic(expected = "no code block marked")]
    fn a_missing_marker_panics() {
        snippet_in(DOC, "two");
    }

    #[test]
    fn the_guide_exists_and_has_snippets() {
        assert!(!snippet_names().is_empty());
    }
}
