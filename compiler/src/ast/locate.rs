//! Locating things in graph-file source: a map from RON field paths to line and column.
//!
//! serde hands us values without positions, so this module scans the text once (skipping strings
//! and comments) and records where each field key and list element starts, keyed by a path such as
//! `nodes[3].op.kernel` or `nodes[3].inputs[0]`. Diagnostics use it to point at the exact place.

use std::collections::HashMap;

use crate::diag::Loc;

/// Field paths of a RON document and where they start.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    locs: HashMap<String, Loc>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Open(char),
    Close,
    Colon,
    Comma,
    Value,
}

struct Frame {
    path: String,
    is_list: bool,
    index: usize,
    element_recorded: bool,
}

impl SourceMap {
    /// Scans `src`. Malformed text is fine: whatever can be located is.
    pub fn build(src: &str) -> SourceMap {
        let toks = tokenize(src);
        let mut map = SourceMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut pending: Option<String> = None;
        let mut i = 0;
        while i < toks.len() {
            let (tok, loc) = &toks[i];
            // A list element starts at its first token.
            if let Some(top) = stack.last_mut() {
                if top.is_list && !top.element_recorded && !matches!(tok, Tok::Close | Tok::Comma) {
                    let p = format!("{}[{}]", top.path, top.index);
                    map.locs.entry(p.clone()).or_insert(*loc);
                    top.element_recorded = true;
                    pending = Some(p);
                }
            }
            match tok {
                Tok::Ident(name) if matches!(toks.get(i + 1), Some((Tok::Colon, _))) => {
                    let parent = stack.last().map(|f| f.path.as_str()).unwrap_or("");
                    let key = if parent.is_empty() { name.clone() } else { format!("{parent}.{name}") };
                    map.locs.entry(key.clone()).or_insert(*loc);
                    pending = Some(key);
                    i += 1;
                }
                Tok::Ident(_) => {
                    // A variant or struct name: the path carries on into its parentheses.
                    if !matches!(toks.get(i + 1), Some((Tok::Open(_), _))) {
                        pending = None;
                    }
                }
                Tok::Open(c) => {
                    let path = pending
                        .take()
                        .unwrap_or_else(|| stack.last().map(|f| f.path.clone()).unwrap_or_default());
                    stack.push(Frame { path, is_list: *c == '[', index: 0, element_recorded: false });
                }
                Tok::Close => {
                    stack.pop();
                    pending = None;
                }
                Tok::Comma => {
                    if let Some(top) = stack.last_mut() {
                        if top.is_list {
                            top.index += 1;
                            top.element_recorded = false;
                        }
                    }
                    pending = None;
                }
                Tok::Colon | Tok::Value => pending = None,
            }
            i += 1;
        }
        map
    }

    /// Where `path` starts, if it was found.
    pub fn get(&self, path: &str) -> Option<Loc> {
        self.locs.get(path).copied()
    }

    /// The first of `paths` that was found: the most precise place first, then fallbacks.
    pub fn find(&self, paths: &[&str]) -> Option<Loc> {
        paths.iter().find_map(|p| self.get(p))
    }

    /// Where field `path` starts, else where the field enclosing it does (`optimizer.lr` falls
    /// back to `optimizer` when the file leaves `lr` to its default).
    pub fn find_nearest(&self, path: &str) -> Option<Loc> {
        let enclosing = path.rsplit_once('.').map_or(path, |(p, _)| p);
        self.find(&[path, enclosing])
    }
}

fn tokenize(src: &str) -> Vec<(Tok, Loc)> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    macro_rules! bump {
        () => {{
            if chars[i] == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    while i < chars.len() {
        let c = chars[i];
        let loc = Loc { line, col };
        if c.is_whitespace() {
            bump!();
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                bump!();
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    bump!();
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    bump!();
                    if depth == 0 {
                        bump!();
                        break;
                    }
                }
                bump!();
            }
        } else if c == '"' {
            bump!();
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    bump!();
                }
                if i < chars.len() {
                    bump!();
                }
            }
            if i < chars.len() {
                bump!();
            }
            toks.push((Tok::Value, loc));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                bump!();
            }
            toks.push((Tok::Ident(chars[start..i].iter().collect()), loc));
        } else {
            let tok = match c {
                '(' | '[' | '{' => Tok::Open(c),
                ')' | ']' | '}' => Tok::Close,
                ':' => Tok::Colon,
                ',' => Tok::Comma,
                _ => Tok::Value,
            };
            // Numbers and other punctuation: one token per run of value characters.
            if tok == Tok::Value {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "+-._".contains(chars[i])) {
                    bump!();
                }
                if i < chars.len() && chars[i] == c && !c.is_ascii_alphanumeric() && !"+-._".contains(c) {
                    bump!();
                }
            } else {
                bump!();
            }
            toks.push((tok, loc));
        }
    }
    toks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_fields_and_list_elements() {
        let src = "Graph(\n  name: \"x\", // a comment: with colon\n  nodes: [\n    (name: \"a\", op: Conv2d(kernel: 3), inputs: [\"data\"]),\n    (name: \"b\", op: Relu, inputs: [\"a\", \"c\"]),\n  ],\n)";
        let m = SourceMap::build(src);
        assert_eq!(m.get("name"), Some(Loc { line: 2, col: 3 }));
        assert_eq!(m.get("nodes[0]"), Some(Loc { line: 4, col: 5 }));
        assert_eq!(m.get("nodes[0].op.kernel"), Some(Loc { line: 4, col: 28 }));
        assert_eq!(m.get("nodes[1].inputs[1]"), Some(Loc { line: 5, col: 41 }));
        assert_eq!(m.get("nodes[1].op"), Some(Loc { line: 5, col: 17 }));
        assert_eq!(m.get("with"), None);
    }
}
