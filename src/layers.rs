//! The guard of the one-way flow (DESIGN: handler → service → store): no service module
//! names an HTTP adapter, and no adapter reaches past the services into the store. A test
//! over the source, so that a new feature that reaches from a service into `web`, `api`,
//! `ops`, the HTTP error type or the OIDC endpoints, or from a handler into the store,
//! fails CI.

/// Modules (top-level, or a file under one) that speak HTTP.
const ADAPTERS: [&str; 6] = ["web", "api", "ops", "error", "oidc/http.rs", "oidc/http"];
/// What a service may not name.
const FORBIDDEN: [&str; 6] = [
    "crate::web",
    "crate::api",
    "crate::ops",
    "crate::error",
    "oidc::http",
    "super::http",
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
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 50, "the source tree was not found at {src:?}");
    let mut breaches = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = relative
            .split('/')
            .next()
            .unwrap_or("")
            .trim_end_matches(".rs");
        let wiring = ["lib", "main", "layers"].contains(&top);
        let adapter = ADAPTERS
            .iter()
            .any(|a| *a == top || relative == *a || relative.starts_with(&format!("{a}/")));
        if wiring || adapter {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(name) = FORBIDDEN.iter().find(|f| code.contains(*f)) {
                breaches.push(format!("src/{relative}:{}: names {name}", n + 1));
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "services must not depend on HTTP adapters:\n{}",
        breaches.join("\n")
    );
}

/// `Services.store` is private, but privacy in the crate root lets every module of the crate
/// read it: this keeps the handlers off it (the CLI, another crate, cannot compile it).
#[test]
fn adapters_never_reach_the_store() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut breaches = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = relative
            .split('/')
            .next()
            .unwrap_or("")
            .trim_end_matches(".rs");
        let adapter = ADAPTERS
            .iter()
            .any(|a| *a == top || relative == *a || relative.starts_with(&format!("{a}/")));
        if !adapter {
            continue;
        }
        // Calls are often split over lines (`state\n    .store\n    .x()`): compare the
        // code without comments and whitespace.
        let code: String = std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .collect::<String>()
            .split_whitespace()
            .collect();
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
