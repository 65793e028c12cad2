//! The dependency arrows of `src/` point one way (see the module map in `src/lib.rs`):
//! `api` → services (`auth`, `accounts`, `icsrs`, their `error`) → `tenancy` → `store` →
//! `domain`, with `config`, `cluster`, `metrics` and `telemetry` beside them. Only `api`,
//! `startup` and `cli` know the web framework. This test reads every source file and fails on
//! an import that points the wrong way, naming the file and the import.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// Each top-level module and the crate modules it may import (besides itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("store", &["domain"]),
    ("config", &["domain"]),
    ("cluster", &["config", "domain"]),
    ("metrics", &["domain", "store"]),
    ("telemetry", &["config"]),
    ("tenancy", &["cluster", "config", "domain", "store"]),
    ("error", &["domain", "store", "tenancy"]),
    (
        "auth",
        &[
            "cluster", "config", "domain", "error", "metrics", "store", "tenancy",
        ],
    ),
    ("accounts", &["auth", "domain", "error", "store", "tenancy"]),
    ("icsrs", &["auth", "domain", "error", "store"]),
    (
        "api",
        &[
            "accounts",
            "auth",
            "cluster",
            "config",
            "domain",
            "error",
            "icsrs",
            "metrics",
            "telemetry",
            "tenancy",
        ],
    ),
    (
        "startup",
        &[
            "accounts", "api", "auth", "cluster", "config", "domain", "icsrs", "metrics", "store",
            "tenancy",
        ],
    ),
    (
        "cli",
        &[
            "accounts",
            "api",
            "auth",
            "cluster",
            "config",
            "domain",
            "icsrs",
            "metrics",
            "startup",
            "store",
            "telemetry",
            "tenancy",
        ],
    ),
];

/// The only modules that may name poem or poem-openapi.
const KNOW_HTTP: &[&str] = &["api", "startup", "cli"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its `#[cfg(test)]` part (tests may reach anywhere) and without
/// comments.
fn production_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read a source file");
    let code = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    code.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate's top-level modules a piece of code names: `crate::x…` and `crate::{x, y::…}`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first path segment of every item of the group, at brace depth 0.
            let mut depth = 0;
            let mut start = true;
            let mut word = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => word.push(c),
                    _ if start && !word.is_empty() => {
                        found.insert(std::mem::take(&mut word));
                        start = false;
                    }
                    _ => {}
                }
            }
            if !word.is_empty() {
                found.insert(word);
            }
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(word);
        }
    }
    found
}

#[test]
fn imports_point_one_way_and_only_the_edge_knows_http() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let modules: Vec<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a UTF-8 path")
            .trim_end_matches(".rs");
        if matches!(top, "lib" | "main") || relative.ends_with("tests.rs") {
            continue;
        }
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == top) else {
            wrong.push(format!(
                "src/{}: module `{top}` is not on the layer map (add it to ALLOWED and lib.rs)",
                relative.display()
            ));
            continue;
        };
        checked += 1;
        let code = production_code(file);
        for module in crate_modules(&code) {
            if module != top && modules.contains(&module.as_str()) && !allowed.contains(&&*module) {
                wrong.push(format!(
                    "src/{}: `{top}` imports `crate::{module}`",
                    relative.display()
                ));
            }
        }
        let http = code.contains("poem::") || code.contains("poem_openapi");
        if http && !KNOW_HTTP.contains(&top) {
            wrong.push(format!(
                "src/{}: `{top}` names the web framework (only {KNOW_HTTP:?} may)",
                relative.display()
            ));
        }
    }
    assert!(checked > 50, "only {checked} source files were checked");
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_import_reader_sees_grouped_and_plain_paths() {
    let code = "use crate::{\n    api::x,\n    store::{a, b},\n    domain::Y,\n};\nfn f() { crate::tenancy::g(); }";
    let found: Vec<String> = crate_modules(code).into_iter().collect();
    assert_eq!(found, ["api", "domain", "store", "tenancy"]);
}
