//! The suite's own guard: every method of every store trait (`pub trait …Store` in
//! `src/store/*.rs`) is called somewhere in this suite, so that a new store method without a
//! conformance test fails here, by name.

use std::path::{Path, PathBuf};

/// The `.rs` files directly in `dir`, sorted.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
}

/// `(trait, method)` for each `fn` declared in a `pub trait …Store` of `source`.
fn trait_methods(source: &str) -> Vec<(String, String)> {
    let mut methods = Vec::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        let Some(declared) = line.trim_start().strip_prefix("pub trait ") else {
            continue;
        };
        let name: String = declared
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The body: from the trait's `{` to its match, comments left out (the bodies of
        // store traits hold declarations only, no strings).
        let mut depth = 0;
        let mut opened = false;
        let mut rest = Some(line);
        while let Some(line) = rest {
            let code = line.split("//").next().unwrap();
            let mut words = code.split_whitespace().peekable();
            while let Some(word) = words.next() {
                if word == "fn" && name.ends_with("Store") {
                    let method: String = words
                        .peek()
                        .unwrap()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    methods.push((name.clone(), method));
                }
            }
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth == 0 {
                break;
            }
            rest = lines.next();
        }
    }
    methods
}

/// The supertraits `Store` is the sum of, from `pub trait Store: A + B + … {`.
fn parts_of_store(source: &str) -> Vec<String> {
    let start = source.find("pub trait Store:").unwrap() + "pub trait Store:".len();
    let end = start + source[start..].find('{').unwrap();
    source[start..end]
        .split('+')
        .map(str::trim)
        .filter(|part| part.ends_with("Store"))
        .map(str::to_string)
        .collect()
}

/// The suite's code without its comments and whitespace: `.name(` marks a call.
fn suite_code(root: &Path) -> String {
    let mut files = sources(&root.join("tests/it/store"));
    files.push(root.join("tests/it/store.rs"));
    let mut code = String::new();
    for file in files {
        if file.ends_with("coverage.rs") {
            continue;
        }
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            if !line.trim_start().starts_with("//") {
                code.extend(line.chars().filter(|c| !c.is_whitespace()));
            }
        }
    }
    code
}

#[test]
fn every_store_method_is_called_by_the_suite() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut methods = Vec::new();
    for file in sources(&root.join("src/store")) {
        methods.extend(trait_methods(&std::fs::read_to_string(file).unwrap()));
    }
    // The reading itself is checked: every part of `Store` was found, with methods.
    let store = std::fs::read_to_string(root.join("src/store/mod.rs")).unwrap();
    let mut parts = parts_of_store(&store);
    parts.push("Store".to_string());
    assert!(parts.len() > 5, "parts of Store: {parts:?}");
    for part in &parts {
        assert!(
            methods.iter().any(|(t, _)| t == part),
            "no methods found for {part}: is the guard still reading src/store/ right?"
        );
    }

    let code = suite_code(root);
    let missing: Vec<_> = methods
        .iter()
        .filter(|(_, method)| {
            !code.contains(&format!(".{method}(")) && !code.contains(&format!(".{method}::<"))
        })
        .map(|(store, method)| format!("{store}::{method}"))
        .collect();
    assert!(
        missing.is_empty(),
        "store methods without a conformance test in tests/it/store/ \
         (call each on both backends, with assertions): {missing:?}"
    );
}

#[test]
fn the_guard_reads_trait_methods_and_only_those() {
    let source = "\
/// Doc with `pub trait NotThis {`.
#[async_trait]
pub trait ThingStore: Send + Sync {
    // Things.
    async fn put_thing(&self, thing: &Thing) -> Result<(), StoreError>;
    /// Takes { a brace in a comment.
    fn thing_count(&self)
    -> Result<i64, StoreError>;
}

pub trait Helper {
    fn not_a_store_method(&self);
}

impl ThingStore for Sqlite {
    async fn put_thing(&self, thing: &Thing) -> Result<(), StoreError> {
        fn inner() {}
    }
}
";
    let methods = trait_methods(source);
    let names: Vec<_> = methods.iter().map(|(t, m)| format!("{t}::{m}")).collect();
    assert_eq!(names, ["ThingStore::put_thing", "ThingStore::thing_count"]);
}
