//! The guard of the one-way flow (DESIGN: handler → service → store): no service module
//! names an HTTP adapter, and the adapters never name one another (they share the kit,
//! `http`). A test over the source, so that a new feature that reaches from a service into
//! `web`, `api`, `ops`, the kit, the HTTP error type or the OIDC endpoints, or from one
//! adapter into another, fails CI.

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

#[test]
fn adapters_never_name_one_another() {
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
        let Some((_, walls)) = ADAPTER_WALLS
            .iter()
            .find(|(adapter, _)| relative == *adapter || relative.starts_with(adapter))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(name) = walls.iter().find(|w| code.contains(*w)) {
                breaches.push(format!("src/{relative}:{}: names {name}", n + 1));
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "adapters must not depend on one another (share through `http`):\n{}",
        breaches.join("\n")
    );
}
