//! The module graph of `src/`, read from the source: every `crate::…` and
//! `super::…` path a file names is an arrow to the module it names. The arrows
//! point down the layers of docs/ARCHITECTURE.md only, no file reaches itself
//! through others, only `store/` speaks diesel, routes never reach each other,
//! and `main.rs` only parses the command line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the top of the graph down; a module may use those on
/// its own line or below, never above.
const LAYERS: &[&[&str]] = &[
    &["cli", "demo"],
    &["startup"],
    &["routes"],
    &["http"],
    &["service"],
    &["page"],
    &["error"],
    &["state"],
    &["sync", "delivery"],
    &["change"],
    &["notices", "providers", "tasks"],
    &["cache", "limits", "metrics", "redis"],
    &["store"],
    &["telemetry", "config"],
    &["secrets", "ids"],
];

fn layer_of(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS
        .iter()
        .position(|l| l.contains(&top))
        .unwrap_or_else(|| {
            panic!("module `{module}` is in no layer: add it to LAYERS and docs/ARCHITECTURE.md")
        })
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn adapters_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters/src")
}

/// Every library file by module path (`service::contacts`, `store`).
fn modules() -> BTreeMap<String, String> {
    modules_under(&src(), false)
}

/// Every file under `root` by module path; with `with_lib`, `lib.rs` too, as the
/// module `lib`, its `pub use` lines read as the paths they name.
fn modules_under(root: &Path, with_lib: bool) -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    let mut out = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(root).expect("under the root");
        let rel = rel.to_string_lossy().replace('\\', "/");
        if rel == "lib.rs" && with_lib {
            let text = std::fs::read_to_string(&file).expect("read");
            out.insert(
                "lib".to_string(),
                text.replace("pub use ", "pub use crate::"),
            );
            continue;
        }
        if rel == "lib.rs" || rel == "main.rs" {
            continue;
        }
        let module = rel
            .trim_end_matches(".rs")
            .trim_end_matches("/mod")
            .replace('/', "::");
        out.insert(module, std::fs::read_to_string(&file).expect("read"));
    }
    out
}

/// The code of a file without comments (doc comments name modules too) and
/// without its unit tests (the `#[cfg(test)]` module at its end).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths a file names: `crate::a::b::…` and `super::…` (relative to
/// the file's module), with braced groups (`crate::store::{people, Store}`) expanded.
fn named_paths(module: &str, is_mod_rs: bool, code: &str) -> Vec<String> {
    let parent: Vec<&str> = {
        let parts: Vec<&str> = module.split("::").collect();
        // `super` in `a/b.rs` is `a`; in `a/mod.rs` (module `a`) it is the crate.
        if is_mod_rs {
            Vec::new()
        } else {
            parts[..parts.len() - 1].to_vec()
        }
    };
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for (start, anchor) in [("crate::", true), ("super::", false)] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            // Not the tail of another path (`unicontacts::crate::…` does not occur).
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let rest = &code[from..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let base: Vec<String> = if anchor {
                Vec::new()
            } else {
                parent.iter().map(|s| s.to_string()).collect()
            };
            let mut prefix = base.clone();
            prefix.extend(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
            let after = &rest[path.len()..];
            // `crate::{a, b}` and `crate::a::{b, c}` alike.
            if (path.is_empty() || path.ends_with("::")) && after.starts_with('{') {
                let group = &after[1..after.find('}').unwrap_or(after.len())];
                for item in group.split(',') {
                    let name = item.trim().split([' ', ':']).next().unwrap_or("");
                    if name.is_empty() || name == "self" {
                        out.push(prefix.join("::"));
                    } else {
                        let mut p = prefix.clone();
                        p.push(name.to_string());
                        out.push(p.join("::"));
                    }
                }
            } else {
                out.push(prefix.join("::"));
            }
        }
    }
    out
}

/// The module a named path lands in: its longest prefix that is a module; a
/// path naming no module lands in `lib` (an item of the crate's root) where
/// the crate's root is one of the modules.
fn resolve(path: &str, modules: &BTreeMap<String, String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find(|p| modules.contains_key(p))
        .or_else(|| modules.contains_key("lib").then(|| "lib".to_string()))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    graph_of(&src(), modules())
}

/// The adapters crate's graph, its root (`lib`) included: a provider module
/// naming `crate::Thing` where `lib.rs` re-exports it reaches `lib`.
fn adapters_graph() -> BTreeMap<String, BTreeSet<String>> {
    graph_of(&adapters_src(), modules_under(&adapters_src(), true))
}

fn simulators_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("simulators/src")
}

fn graph_of(root: &Path, modules: BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &modules {
        let is_mod_rs =
            module == "lib" || root.join(module.replace("::", "/")).join("mod.rs").exists();
        let targets = edges.entry(module.clone()).or_default();
        for path in named_paths(module, is_mod_rs, &code(text)) {
            if let Some(target) = resolve(&path, &modules) {
                if &target != module && !module.starts_with(&format!("{target}::")) {
                    targets.insert(target);
                }
            }
        }
    }
    edges
}

#[test]
fn arrows_only_point_down_the_layers() {
    let mut upward = Vec::new();
    for (from, targets) in graph() {
        for to in targets {
            if layer_of(&to) < layer_of(&from) {
                upward.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(upward.is_empty(), "upward imports: {upward:#?}");
}

#[test]
fn no_module_reaches_itself_through_others() {
    no_cycle(&graph());
}

/// In the adapters crate, no module reaches itself either, and nothing below
/// the crate's root reaches back to it: `lib.rs` only declares and re-exports.
#[test]
fn the_adapters_crate_reads_top_down() {
    let edges = adapters_graph();
    no_cycle(&edges);
    let to_root: Vec<&String> = edges
        .iter()
        .filter(|(from, to)| from.as_str() != "lib" && to.contains("lib"))
        .map(|(from, _)| from)
        .collect();
    assert!(
        to_root.is_empty(),
        "modules naming the crate root's re-exports (`crate::Thing`) instead of the module that defines it: {to_root:?}"
    );
}

/// The simulators are a crate of their own: the adapters (what the service
/// ships) never name them, and they have no import circle either.
#[test]
fn the_simulators_stay_apart_and_read_top_down() {
    for (module, text) in modules_under(&adapters_src(), true) {
        let code = code(&text);
        assert!(
            !code.contains("unicontacts_simulators") && !code.contains("mod sim"),
            "adapters' {module} names the simulators"
        );
    }
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("adapters/Cargo.toml"))
            .expect("adapters/Cargo.toml");
    assert!(
        !manifest.contains("unicontacts-simulators"),
        "the adapters crate depends on the simulators"
    );
    no_cycle(&graph_of(
        &simulators_src(),
        modules_under(&simulators_src(), true),
    ));
}

fn no_cycle(edges: &BTreeMap<String, BTreeSet<String>>) {
    // Depth-first search with colours; a grey node met again closes a cycle.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        colour.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match colour.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, edges, colour, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        colour.insert(node.to_string(), 2);
        None
    }
    let mut colour = BTreeMap::new();
    for node in edges.keys() {
        if colour.get(node.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(node, edges, &mut colour, &mut Vec::new()) {
                panic!("import cycle: {}", cycle.join(" -> "));
            }
        }
    }
}

#[test]
fn only_the_store_speaks_sql_and_routes_stay_apart() {
    for (module, text) in modules() {
        let code = code(&text);
        if !module.starts_with("store") {
            assert!(
                !code.contains("diesel"),
                "{module} uses diesel: queries belong in store/"
            );
        }
        if module.starts_with("routes::") {
            assert!(
                !code.contains("crate::routes") && !code.contains("super::"),
                "{module} reaches another route module"
            );
        }
    }
    let main = code(&std::fs::read_to_string(src().join("main.rs")).expect("main.rs"));
    for forbidden in [
        "diesel",
        "unicontacts::store",
        "unicontacts::service::connections",
        "open_store",
        "Application",
    ] {
        assert!(
            !main.contains(forbidden),
            "main.rs only parses the command line; it names `{forbidden}`"
        );
    }
}

/// Every change to contacts and people goes through `change::ContactChange`
/// (which takes the org's lock, relinks, records the events and moves the
/// store's change counter the read caches trust): outside `change` and the
/// store, no code calls the store's writes of contacts and people, and none
/// takes the org's lock to write them by hand.
#[test]
fn contacts_and_people_change_only_through_the_unit_of_work() {
    const WRITES: [&str; 12] = [
        "::upsert_prepared",
        "::upsert_contact",
        "::mark_deleted",
        "::mark_live_deleted",
        "::mark_connection_deleted",
        "::mark_unseen_deleted",
        "::delete_connection",
        "::link_contacts",
        "::link_incoming",
        "::set_people",
        "::insert_people",
        "events::append",
    ];
    let mut found = Vec::new();
    for (module, text) in modules() {
        let top = module.split("::").next().unwrap_or(&module);
        // (Routes never reach the store: `only_the_store_speaks_sql_and_routes_stay_apart`.)
        if top == "store" || top == "change" || top == "routes" {
            continue;
        }
        let code = code(&text);
        for write in WRITES {
            if code.contains(write) {
                found.push(format!("{module} calls `{write}`"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "write contacts and people through change::ContactChange: {found:?}"
    );
}

/// Routes shape what services give them: a store row (`ApiKeyRow`,
/// `SyncRunRow`, …) becomes a view in its service, never in a route.
#[test]
fn routes_never_map_store_rows() {
    let mut found = Vec::new();
    for (module, text) in modules() {
        if !module.starts_with("routes") {
            continue;
        }
        for line in code(&text).lines() {
            let named_row = line
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| word.len() > 3 && word.ends_with("Row"));
            if line.contains("store") && named_row {
                found.push(format!("{module}: {}", line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "routes naming store rows: {found:?}");
}

#[test]
fn the_reader_finds_the_arrows_it_should() {
    // The parser itself, on shapes this codebase uses.
    let modules: BTreeMap<String, String> = [
        "store",
        "store::people",
        "sync::link",
        "sync",
        "ids",
        "cache",
        "metrics",
    ]
    .iter()
    .map(|m| (m.to_string(), String::new()))
    .collect();
    let named = named_paths(
        "sync::link",
        false,
        "use crate::ids;\nuse crate::store::{self as s, people as q, DbConnection};\nuse super::run;\nuse crate::{cache, metrics as m};",
    );
    let resolved: BTreeSet<String> = named.iter().filter_map(|p| resolve(p, &modules)).collect();
    assert_eq!(
        resolved,
        ["cache", "ids", "metrics", "store", "store::people", "sync"]
            .into_iter()
            .map(str::to_string)
            .collect()
    );
}
