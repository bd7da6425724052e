//! The guards of the one-way flow (DESIGN: handler → service → store): no service module
//! names an HTTP adapter, and the adapters never name one another (they share the kit,
//! `http`). A test over the source, so that a new feature that reaches from a service into
//! `web`, `api`, `ops`, the kit, the HTTP error type or the OIDC endpoints, or from one
//! adapter into another, or from a handler past the services into the store, fails CI. A
//! fourth test proves that the modules form no circle:
//! the graph of `crate::…` mentions between the top-level modules of `src/` (with
//! `oidc/http.rs` and `oidc/http/` as a node of their own, an adapter inside a service's
//! folder) has no cycle; `lib.rs`, `main.rs` and this file wire everything and are left out.

use std::collections::{BTreeMap, BTreeSet};

/// Modules (top-level, or a file under one) that speak HTTP.
const ADAPTERS: [&str; 7] = [
    "web",
    "api",
    "ops",
    "http",
    "error",
    "oidc/http.rs",
    "oidc/http",
];
/// What a service may not name.
const FORBIDDEN: [&str; 7] = [
    "crate::web",
    "crate::api",
    "crate::ops",
    "crate::http",
    "crate::error",
    "oidc::http",
    "super::http",
];
/// Each adapter (by the path of its files) and the adapters it may not name: the endpoints
/// never reach into one another, and the kit and the error type lie below them all.
const ADAPTER_WALLS: [(&str, &[&str]); 7] = [
    ("web/", &["crate::api", "crate::ops", "oidc::http"]),
    ("api/", &["crate::web", "crate::ops", "oidc::http"]),
    ("ops.rs", &["crate::web", "crate::api", "oidc::http"]),
    ("oidc/http.rs", &["crate::web", "crate::api", "crate::ops"]),
    ("oidc/http/", &["crate::web", "crate::api", "crate::ops"]),
    (
        "http/",
        &["crate::web", "crate::api", "crate::ops", "oidc::http"],
    ),
    (
        "error.rs",
        &[
            "crate::web",
            "crate::api",
            "crate::ops",
            "oidc::http",
            "crate::http",
        ],
    ),
];

fn rust_files(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn services_never_name_an_adapter() {
    let mut breaches = Vec::new();
    for (relative, code) in sources() {
        if WIRING.contains(&node_of(&relative).as_str()) || is_adapter(&relative) {
            continue;
        }
        breaches.extend(names_in(&relative, &code, &FORBIDDEN));
    }
    assert!(
        breaches.is_empty(),
        "services must not depend on HTTP adapters:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn adapters_never_name_one_another() {
    let mut breaches = Vec::new();
    for (relative, code) in sources() {
        let Some((_, walls)) = ADAPTER_WALLS
            .iter()
            .find(|(adapter, _)| relative == *adapter || relative.starts_with(adapter))
        else {
            continue;
        };
        breaches.extend(names_in(&relative, &code, walls));
    }
    assert!(
        breaches.is_empty(),
        "adapters must not depend on one another (share through `http`):\n{}",
        breaches.join("\n")
    );
}

/// The places where `code` (of `src/<relative>`) names one of `names`.
fn names_in(relative: &str, code: &[String], names: &[&str]) -> Vec<String> {
    code.iter()
        .enumerate()
        .filter_map(|(n, line)| {
            let name = names.iter().find(|name| line.contains(*name))?;
            Some(format!("src/{relative}:{}: names {name}", n + 1))
        })
        .collect()
}

/// Whether a file (relative to `src/`) belongs to an HTTP adapter.
fn is_adapter(relative: &str) -> bool {
    let top = relative
        .split('/')
        .next()
        .unwrap_or("")
        .trim_end_matches(".rs");
    ADAPTERS
        .iter()
        .any(|a| *a == top || relative == *a || relative.starts_with(&format!("{a}/")))
}

/// The modules that wire the others, left out of the circle check.
const WIRING: [&str; 3] = ["lib", "main", "layers"];

/// Every source file: its path relative to `src/` (with `/`) and its code lines (comments cut).
fn sources() -> Vec<(String, Vec<String>)> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "the source tree was not found at {src:?}");
    files
        .into_iter()
        .map(|file| {
            let relative = file
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text
                .lines()
                .map(|line| line.split("//").next().unwrap_or("").to_string())
                .collect();
            (relative, code)
        })
        .collect()
}

/// The node a file belongs to: its top-level module, but `oidc::http` for the endpoints.
fn node_of(relative: &str) -> String {
    if relative == "oidc/http.rs" || relative.starts_with("oidc/http/") {
        return "oidc::http".into();
    }
    relative
        .split('/')
        .next()
        .unwrap_or("")
        .trim_end_matches(".rs")
        .to_string()
}

/// The modules a line of code names: `crate::x` (and `crate::oidc::http`).
fn named_modules(code: &str) -> Vec<String> {
    let mut named = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let module: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if module.is_empty() {
            continue; // `crate::AppState` and other items of lib.rs
        }
        if module == "oidc" && rest.starts_with("oidc::http") {
            named.push("oidc::http".into());
        } else {
            named.push(module);
        }
    }
    named
}

#[test]
fn modules_form_no_circle() {
    // Who names whom, and where (the first place, to point at).
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (relative, code) in sources() {
        let from = node_of(&relative);
        if WIRING.contains(&from.as_str()) {
            continue;
        }
        let edges = graph.entry(from.clone()).or_default();
        for (n, line) in code.iter().enumerate() {
            for to in named_modules(line) {
                if to != from && !WIRING.contains(&to.as_str()) {
                    edges
                        .entry(to)
                        .or_insert_with(|| format!("src/{relative}:{}", n + 1));
                }
            }
        }
    }
    // Depth-first search; a grey node met again closes a circle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        circles: &mut Vec<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut circle: Vec<String> = path[start..].to_vec();
            circle.push(node.to_string());
            let places: Vec<String> = circle
                .windows(2)
                .map(|w| format!("  {} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
                .collect();
            circles.push(places.join("\n"));
            return;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            visit(next, graph, path, done, circles);
        }
        path.pop();
        done.insert(node.to_string());
    }
    let mut circles = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(
        circles.is_empty(),
        "modules must not form a circle (DESIGN: data flows one way):\n{}",
        circles.join("\n\n")
    );
}

/// `Services.store` is private, but privacy in the crate root lets every module of the crate
/// read it: this keeps the handlers off it (the CLI, another crate, cannot compile it).
#[test]
fn adapters_never_reach_the_store() {
    let mut breaches = Vec::new();
    for (relative, code) in sources() {
        if !is_adapter(&relative) {
            continue;
        }
        // Calls are often split over lines (`state\n    .store\n    .x()`): compare the
        // code without comments and whitespace.
        let code: String = code.concat().split_whitespace().collect();
        if code.contains("state.store") {
            breaches.push(format!("src/{relative}"));
        }
    }
    assert!(
        breaches.is_empty(),
        "handlers must reach the store through services: {}",
        breaches.join(", ")
    );
}
