//! The layering ARCHITECTURE.md states, read from the source: storage (`db`) never reaches
//! above itself, the leaves import nothing of the crate, and no file of `src/` takes names,
//! directly or through others, from a file that takes names from it (no circle). A module's
//! `mod.rs` is its parent and left out of circles: its children use what it declares.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules storage must never import.
const ABOVE_STORAGE: &[&str] = &[
    "api",
    "collector",
    "cli",
    "service",
    "dashboard",
    "unused",
    "findings",
    "recommend",
];

/// Files that import nothing of the crate (beyond, for `db/vocabulary.rs`, storage's error).
const LEAVES: &[(&str, &[&str])] = &[
    ("arn.rs", &[]),
    ("time.rs", &[]),
    ("named.rs", &[]),
    ("error_text.rs", &[]),
    ("slow_lane.rs", &[]),
    ("policy.rs", &[]),
    ("db/error.rs", &["db/uri.rs"]),
    ("db/uri.rs", &[]),
    ("db/vocabulary.rs", &["db/error.rs"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, as a path relative to it, with its text.
fn sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(relative, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&src(), &src(), &mut out);
    out
}

/// The text without comments (so that a doc line naming a module is no import) and without
/// its unit tests (a test may use what the code must not).
fn code_of(text: &str) -> String {
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The file a module path names (`["db", "read"]`: `db/read.rs` or `db/read/mod.rs`), the
/// longest prefix of the path that is a file.
fn file_of(segments: &[&str], files: &BTreeMap<String, String>) -> Option<String> {
    (1..=segments.len()).rev().find_map(|n| {
        let base = segments[..n].join("/");
        [format!("{base}.rs"), format!("{base}/mod.rs")]
            .into_iter()
            .find(|candidate| files.contains_key(candidate))
    })
}

/// The directory (as module segments) whose `mod.rs` or `name.rs` declares `file`'s siblings.
fn parent_segments(file: &str) -> Vec<String> {
    let path = Path::new(file);
    let mut segments: Vec<String> = path
        .parent()
        .map(|p| p.iter().map(|s| s.to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    if path.file_name().is_some_and(|n| n == "mod.rs") {
        segments.pop();
    }
    segments
}

/// The files of the crate that `file` takes names from: `crate::a::b` and `super::b` paths,
/// in `use` lines (with their braces) and in code.
fn imports(file: &str, text: &str, files: &BTreeMap<String, String>) -> BTreeSet<String> {
    let code = code_of(text);
    let path =
        regex::Regex::new(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)(::\{([^}]*)\})?").unwrap();
    let mut found = BTreeSet::new();
    for capture in path.captures_iter(&code) {
        let mut segments: Vec<String> = match &capture[1] {
            "crate" => Vec::new(),
            _ => parent_segments(file),
        };
        segments.extend(
            capture[2]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        let mut paths = vec![segments.clone()];
        if let Some(group) = capture.get(4) {
            for item in group.as_str().split(',') {
                let first = item.trim().split("::").next().unwrap_or_default().trim();
                if first.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && first != "self" {
                    let mut more = segments.clone();
                    more.push(first.to_owned());
                    paths.push(more);
                }
            }
        }
        for segments in paths {
            let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
            if let Some(target) = file_of(&refs, files) {
                if target != file {
                    found.insert(target);
                }
            }
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    files
        .iter()
        .map(|(file, text)| (file.clone(), imports(file, text, &files)))
        .collect()
}

#[test]
fn storage_never_imports_what_is_above_it() {
    for (file, targets) in graph() {
        if !file.starts_with("db/") {
            continue;
        }
        for target in targets {
            let top = target.split(['/', '.']).next().unwrap_or_default();
            assert!(
                !ABOVE_STORAGE.contains(&top),
                "{file} imports {target}, above storage"
            );
        }
    }
}

#[test]
fn leaves_import_nothing_of_the_crate() {
    let graph = graph();
    for (leaf, allowed) in LEAVES {
        let targets = graph.get(*leaf).unwrap_or_else(|| panic!("{leaf} is gone"));
        let extra: Vec<&String> = targets
            .iter()
            .filter(|t| !allowed.contains(&t.as_str()))
            .collect();
        assert!(extra.is_empty(), "{leaf} imports {extra:?}");
    }
}

#[test]
fn no_circle_among_the_files() {
    let graph = graph();
    let is_parent = |file: &str| file.ends_with("mod.rs") || file == "lib.rs" || file == "main.rs";
    // Depth-first search for a back edge, remembering the path to report the circle.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        skip: &dyn Fn(&str) -> bool,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut circle: Vec<String> = path[at..].iter().map(|n| n.to_string()).collect();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if skip(next) {
                continue;
            }
            if let Some(circle) = visit(next, graph, skip, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys().filter(|n| !is_parent(n)) {
        let mut path = Vec::new();
        if let Some(circle) = visit(node, &graph, &is_parent, &mut path, &mut done) {
            panic!("import circle: {}", circle.join(" -> "));
        }
    }
}

/// The reader of the graph finds what it must, so that the checks above can fail.
#[test]
fn the_graph_sees_imports() {
    let graph = graph();
    assert!(
        graph["db/read.rs"].contains("db/vocabulary.rs"),
        "{:?}",
        graph["db/read.rs"]
    );
    assert!(graph["db/read.rs"].contains("db/directory.rs"));
    assert!(graph["collector/account.rs"].contains("collector/run.rs"));
    assert!(graph["api/runs.rs"].contains("time.rs"));
    assert!(graph["cli/report.rs"].contains("db/usage.rs"));
}
