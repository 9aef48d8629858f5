//! The documentation's links hold: every relative link in the repository's Markdown files
//! (README.md, docs/, graphs/, benches/, tests/) names a file or folder that exists, and every
//! `#anchor` into a Markdown file names one of its headings (GitHub's heading ids). Links inside
//! code (fenced blocks, `code spans`) are text, not links; web addresses are not fetched.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The Markdown files under `dir`, leaving out hidden folders and build outputs.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" || name == "runs" {
            continue;
        }
        if path.is_dir() {
            markdown_files(&path, out);
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// A line with its code spans blanked out (a run of N backticks closes at the next run of N).
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&c| c == '`').count();
        let mut j = i + run;
        let close = loop {
            if j >= chars.len() {
                break None;
            }
            if chars[j] == '`' {
                let r = chars[j..].iter().take_while(|&&c| c == '`').count();
                if r == run {
                    break Some(j + r);
                }
                j += r;
            } else {
                j += 1;
            }
        };
        match close {
            Some(end) => i = end,
            None => {
                out.extend(&chars[i..i + run]);
                i += run;
            }
        }
    }
    out
}

/// The lines of a Markdown file outside fenced code blocks, with their numbers (from 1).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((n + 1, line));
        }
    }
    lines
}

/// The destinations of a line's inline links `[text](dest)` and reference definitions `[x]: dest`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut targets = Vec::new();
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let dest = after[..end].split_whitespace().next().unwrap_or("");
        targets.push(dest.trim_matches(|c| c == '<' || c == '>').to_string());
        rest = &after[end..];
    }
    let trimmed = line.trim_start();
    if let (true, Some(close)) = (trimmed.starts_with('['), trimmed.find("]: ")) {
        targets.push(trimmed[close + 3..].split_whitespace().next().unwrap_or("").to_string());
    }
    targets
}

/// GitHub's id for a heading: lower case, punctuation other than `-` and `_` dropped, spaces as
/// `-`, and `-1`, `-2`, ... after a repeated one.
fn heading_ids(text: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base: String = line[hashes..]
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut id = base.clone();
        let mut n = 0;
        while !ids.insert(id.clone()) {
            n += 1;
            id = format!("{base}-{n}");
        }
    }
    ids
}

/// Every broken relative link of the Markdown files under `root`, as `file:line: link (why)`.
fn broken_links(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    markdown_files(root, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(root).unwrap().display().to_string();
        for (n, line) in prose_lines(&text) {
            for dest in link_targets(line) {
                if dest.is_empty() || dest.contains("://") || dest.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = match dest.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (dest.as_str(), None),
                };
                let target = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
                if !target.exists() {
                    broken.push(format!("{shown}:{n}: {dest} (no such file)"));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if target.extension().is_some_and(|e| e == "md") {
                    let ids = heading_ids(&std::fs::read_to_string(&target).unwrap());
                    if !ids.contains(anchor) {
                        broken.push(format!("{shown}:{n}: {dest} (no heading with that id)"));
                    }
                }
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_in_the_documentation_resolves() {
    let broken = broken_links(&repo_root());
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_and_docs_are_among_the_files_checked() {
    let mut files = Vec::new();
    markdown_files(&repo_root(), &mut files);
    let root = repo_root();
    for expected in ["README.md", "docs/testing.md", "graphs/README.md"] {
        assert!(files.contains(&root.join(expected)), "{expected} is not checked: {files:?}");
    }
}

#[test]
fn the_check_finds_a_missing_file_and_a_missing_heading_and_ignores_code() {
    let dir = std::env::temp_dir().join(format!("alexc-doc-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(dir.join("docs/a.md"), "# Two devices: `--devices 2`\n## Same\n## Same\n").unwrap();
    let readme = "\
# Top
[ok](docs/a.md) [ok](docs/a.md#two-devices---devices-2) [ok](docs/a.md#same-1) [ok](#top)
[web](https://example.com/x) `[code](nowhere.md)`
```
[fenced](nowhere.md)
```
[gone](docs/b.md) [gone](docs/a.md#three) [gone](#bottom)
[ref]: docs/c.md
";
    std::fs::write(dir.join("README.md"), readme).unwrap();
    let broken = broken_links(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        broken,
        [
            "README.md:7: docs/b.md (no such file)",
            "README.md:7: docs/a.md#three (no heading with that id)",
            "README.md:7: #bottom (no heading with that id)",
            "README.md:8: docs/c.md (no such file)",
        ]
    );
}
