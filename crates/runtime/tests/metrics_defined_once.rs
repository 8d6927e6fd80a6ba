//! Every metric is defined once, in `orderflow_runtime::telemetry`: each
//! `metrics::counter!`/`gauge!`/`histogram!` call in the workspace's source names one of its
//! constants (`telemetry::RECORDS_RECEIVED.name`), never a string, and the constant is in
//! `telemetry::ALL` with the type the call records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orderflow_runtime::telemetry::{self, MetricKind};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The source files of every crate and of the binaries.
fn sources() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        rust_files(&krate.unwrap().path().join("src"), &mut files);
    }
    rust_files(&root.join("src"), &mut files);
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("crates/runtime/src/consumer.rs")),
        "the source walk found no consumer.rs: {files:?}"
    );
    files
}

/// The text with `//` comments blanked, so examples in docs don't count as calls.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `pub const IDENT: MetricDef = MetricDef { name: "..."` in telemetry.rs: identifier → name.
fn constants() -> BTreeMap<String, String> {
    let text =
        std::fs::read_to_string(workspace_root().join("crates/runtime/src/telemetry.rs")).unwrap();
    let mut found = BTreeMap::new();
    for (at, _) in text.match_indices("pub const ") {
        let rest = &text[at + "pub const ".len()..];
        let Some((ident, rest)) = rest.split_once(": MetricDef = MetricDef {") else {
            continue;
        };
        if ident.contains(char::is_whitespace) {
            continue;
        }
        let name = rest
            .split_once("name: \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(name, _)| name.to_string())
            .unwrap_or_else(|| panic!("telemetry::{ident} has no name"));
        found.insert(ident.to_string(), name);
    }
    found
}

/// Every `counter!(`, `gauge!(` and `histogram!(` call: file, line, macro and first argument.
fn calls() -> Vec<(String, usize, MetricKind, String)> {
    let mut found = Vec::new();
    for path in sources() {
        let text = code(&std::fs::read_to_string(&path).unwrap());
        let file = path
            .strip_prefix(workspace_root())
            .unwrap_or(&path)
            .display()
            .to_string();
        for (macro_name, kind) in [
            ("counter!", MetricKind::Counter),
            ("gauge!", MetricKind::Gauge),
            ("histogram!", MetricKind::Histogram),
        ] {
            for (at, _) in text.match_indices(macro_name) {
                // `describe_counter!` and the like name no metric of their own.
                let before = text[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest = text[at + macro_name.len()..].trim_start();
                let Some(args) = rest.strip_prefix('(') else {
                    continue;
                };
                let first = args
                    .split([',', ')'])
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect::<String>();
                let line = text[..at].matches('\n').count() + 1;
                found.push((file.clone(), line, kind, first));
            }
        }
    }
    found
}

#[test]
fn every_metric_call_names_a_telemetry_constant_of_its_type() {
    let constants = constants();
    assert_eq!(
        constants.len(),
        telemetry::ALL.len(),
        "telemetry.rs defines {constants:?}; ALL has {} entries",
        telemetry::ALL.len()
    );
    let calls = calls();
    assert!(calls.len() >= telemetry::ALL.len(), "found only {calls:?}");
    let mut problems = Vec::new();
    for (file, line, kind, first) in &calls {
        let ident = [
            "crate::telemetry::",
            "orderflow_runtime::telemetry::",
            "telemetry::",
        ]
        .iter()
        .find_map(|prefix| first.strip_prefix(prefix))
        .and_then(|rest| rest.strip_suffix(".name"));
        let Some(ident) = ident else {
            problems.push(format!(
                "{file}:{line}: the metric is `{first}`; name a constant of telemetry.rs \
                 (`telemetry::RECORDS_RECEIVED.name`)"
            ));
            continue;
        };
        let Some(name) = constants.get(ident) else {
            problems.push(format!("{file}:{line}: telemetry::{ident} is no MetricDef"));
            continue;
        };
        match telemetry::ALL.iter().find(|metric| metric.name == name) {
            None => problems.push(format!(
                "{file}:{line}: telemetry::{ident} ({name}) is not in telemetry::ALL"
            )),
            Some(metric) if metric.kind != *kind => problems.push(format!(
                "{file}:{line}: telemetry::{ident} is a {}, recorded as a {}",
                metric.kind.as_str(),
                kind.as_str()
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_defined_metric_is_recorded_somewhere() {
    let constants = constants();
    let used: Vec<String> = calls().into_iter().map(|(.., first)| first).collect();
    for ident in constants.keys() {
        assert!(
            used.iter()
                .any(|first| first.ends_with(&format!("::{ident}.name"))),
            "telemetry::{ident} is defined but never recorded"
        );
    }
}

/// `scripts/check-docs.py` compares the README with telemetry.rs's source; this pins its
/// rendering to what `orderflow metrics` prints.
#[test]
fn the_readme_table_is_what_orderflow_metrics_prints() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let table = readme
        .split_once("<!-- metrics:begin -->\n")
        .and_then(|(_, rest)| rest.split_once("<!-- metrics:end -->"))
        .map(|(table, _)| table)
        .expect("README.md has the metrics table between its markers");
    assert_eq!(table, telemetry::markdown_table());
}
