//! Reading a graph file: from a path or a string to a [`GraphFile`], with located errors.

use std::path::Path;

use super::{GraphFile, SourceMap};
use crate::diag::{Diagnostic, Loc};

/// A parsed graph file with what is needed to point back into its text.
#[derive(Debug, Clone)]
pub struct ParsedGraph {
    pub file: String,
    pub graph: GraphFile,
    pub source_map: SourceMap,
}

/// Reads and parses the graph file at `path`. Every failure is one located diagnostic.
#[allow(clippy::result_large_err)] // one diagnostic per file read, not a hot path
pub fn parse_file(path: &Path) -> Result<ParsedGraph, Diagnostic> {
    let file = path.display().to_string();
    let fail = |msg: String, help: &str| Diagnostic::error(msg).help(help).in_file(&file);
    if path.is_dir() {
        return Err(fail(
            "is a directory, not a graph file".into(),
            "pass a .ron graph file, for example graphs/alexnet.ron",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        let help = if e.kind() == std::io::ErrorKind::NotFound {
            "check the path; the graphs that ship with alexc are in graphs/"
        } else {
            "check that the file is readable"
        };
        fail(format!("cannot read the graph file: {e}"), help)
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let prefix = String::from_utf8_lossy(&e.as_bytes()[..offset]).into_owned();
        Diagnostic::error("the file is not valid UTF-8 text")
            .at(Some(loc_of_offset(&prefix, prefix.len())))
            .help("graph files are UTF-8 RON text; re-save the file as UTF-8")
            .in_file(&file)
    })?;
    parse_str(&text, &file)
}

/// Parses graph-file text; `file` names it in diagnostics.
#[allow(clippy::result_large_err)]
pub fn parse_str(text: &str, file: &str) -> Result<ParsedGraph, Diagnostic> {
    if text.trim().is_empty() {
        return Err(Diagnostic::error("the graph file is empty")
            .at(Some(Loc { line: 1, col: 1 }))
            .help("a graph file holds one `Graph(...)`; see graphs/README.md or graphs/tiny.ron")
            .in_file(file));
    }
    // Optional fields take their value without `Some(...)`; ops take attributes directly.
    let options = ron::Options::default().with_default_extension(
        ron::extensions::Extensions::IMPLICIT_SOME | ron::extensions::Extensions::UNWRAP_VARIANT_NEWTYPES,
    );
    match options.from_str::<GraphFile>(text) {
        Ok(graph) => Ok(ParsedGraph { file: file.to_string(), graph, source_map: SourceMap::build(text) }),
        Err(e) => {
            let loc = Loc { line: e.position.line.max(1), col: e.position.col.max(1) };
            Err(Diagnostic::error(describe(&e.code)).at(Some(loc)).help(help_for(&e.code)).in_file(file))
        }
    }
}

fn describe(code: &ron::Error) -> String {
    match code {
        ron::Error::NoSuchEnumVariant { expected, found, outer } => {
            let what = match outer.as_deref().map(user_name) {
                Some(o) => o.to_string(),
                None => "variant".to_string(),
            };
            format!("unknown {what} `{found}`; expected one of: {}", expected.join(", "))
        }
        ron::Error::NoSuchStructField { expected, found, outer } => format!(
            "unknown attribute `{found}`{}; expected one of: {}",
            outer.as_deref().map(|o| format!(" for `{}`", user_name(o))).unwrap_or_default(),
            expected.join(", ")
        ),
        ron::Error::MissingStructField { field, outer } => format!(
            "missing attribute `{field}`{}",
            outer.as_deref().map(|o| format!(" in `{}`", user_name(o))).unwrap_or_default()
        ),
        other => format!("syntax error: {other}"),
    }
}

/// What the graph language calls a serde type: `ScheduleDecl` is `schedule`.
fn user_name(rust_type: &str) -> &str {
    match rust_type {
        "OpDecl" => "op",
        "Init" => "initialiser",
        "LrnConvention" => "LRN convention",
        "Lighting" => "lighting",
        "PcaBasis" => "PCA basis",
        "MeanDecl" => "mean",
        "TestCrops" => "test_crops",
        "LossDecl" => "loss",
        "OptimizerDecl" => "optimizer",
        "ScheduleDecl" => "schedule",
        "InputDecl" => "input",
        "NodeDecl" => "node",
        "TrainingDecl" => "training",
        "DataDecl" => "data",
        "ParamDecl" => "parameter",
        "ParamDefaults" => "defaults",
        other => other,
    }
}

fn help_for(code: &ron::Error) -> String {
    match code {
        ron::Error::MissingStructField { field, .. } if *field == "convention" => {
            "LRN must say which formula alpha belongs to: `convention: Paper` (alpha * sum, as in \
             Krizhevsky et al.) or `convention: Caffe` (alpha / n * sum, as in Caffe and PyTorch)"
                .into()
        }
        ron::Error::MissingStructField { field, .. } => {
            format!("add `{field}: ...`; graphs/README.md lists every attribute")
        }
        ron::Error::NoSuchStructField { .. } => {
            "check the spelling; graphs/README.md lists every op's attributes".into()
        }
        ron::Error::NoSuchEnumVariant { .. } => {
            "use one of the names listed; graphs/README.md documents each".into()
        }
        ron::Error::Eof => "the file ends too early: close every `(` and `[`".into(),
        _ => "fix the RON syntax at this place; graphs/alexnet.ron is a complete example".into(),
    }
}

/// The 1-based line and column just after the first `offset` bytes of `text`.
pub(crate) fn loc_of_offset(text: &str, offset: usize) -> Loc {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    Loc { line, col }
}
