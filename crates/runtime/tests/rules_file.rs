//! The example rules file `deploy/rules/rules.toml` is valid, sets every key the rules have, and every
//! key it sets is documented in `docs/rules.md`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use orderflow_domain::{Channel, ExceptionKind, Level, Rules};

fn repo_file(path: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn example() -> Rules {
    Rules::from_toml(&repo_file("deploy/rules/rules.toml"))
        .unwrap_or_else(|error| panic!("deploy/rules/rules.toml is refused: {error}"))
}

/// Every leaf key of `value` as a dotted path. Arrays of tables contribute their keys without
/// an index; table keys that name a channel or an exception kind become `<channel>` / `<kind>`,
/// the way docs/rules.md writes them.
fn key_paths(value: &toml::Value) -> BTreeSet<String> {
    fn walk(value: &toml::Value, path: &str, into: &mut BTreeSet<String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, child) in table {
                    let segment = if Channel::ALL.iter().any(|c| c.as_str() == key) {
                        "<channel>"
                    } else if ExceptionKind::ALL.iter().any(|k| k.as_str() == key) {
                        "<kind>"
                    } else {
                        key.as_str()
                    };
                    let child_path = if path.is_empty() {
                        segment.to_string()
                    } else {
                        format!("{path}.{segment}")
                    };
                    walk(child, &child_path, into);
                }
            }
            toml::Value::Array(items)
                if items.iter().all(toml::Value::is_table) && !items.is_empty() =>
            {
                for item in items {
                    walk(item, path, into);
                }
            }
            _ => {
                into.insert(path.to_string());
            }
        }
    }
    let mut paths = BTreeSet::new();
    walk(value, "", &mut paths);
    paths
}

#[test]
fn the_example_is_valid_and_uses_every_section() {
    let rules = example();
    assert_ne!(rules, Rules::default());
    assert_ne!(rules.version, Rules::default().version);
    assert_eq!(rules.auto_approve_below_fen, 50_000, "seed: ¥500");
    assert_eq!(
        rules.compensation.out_of_stock_coupon_fen, 1_000,
        "seed: a 10 元 coupon"
    );
    assert!(rules.duplicate.window_secs > 0);
    assert!(!rules.purchase_limits.is_empty());
    assert!(rules
        .purchase_limits
        .iter()
        .any(|limit| limit.sku.is_some()));
    assert!(rules
        .purchase_limits
        .iter()
        .any(|limit| limit.sku.is_none()));
    assert!(!rules.phone.blacklist.is_empty());
    assert!(!rules.payment_timeout.channels.is_empty());
    assert!(!rules.routing.rules.is_empty());
    assert!(!rules.sla.kinds.is_empty());
}

#[test]
fn the_example_decides_as_its_comments_say() {
    let rules = example();
    let warehouse = |categories: &[&str], province: &str| {
        rules
            .routing
            .warehouse_for(categories.iter().copied(), province)
            .to_string()
    };
    assert_eq!(warehouse(&["tea", "food"], "浙江省"), "WH-EAST");
    assert_eq!(warehouse(&["tea", "electronics"], "浙江省"), "WH-CENTRAL");
    assert_eq!(warehouse(&["apparel"], "广东省"), "WH-SOUTH");
    assert_eq!(warehouse(&["books"], "北京市"), "WH-NORTH");
    assert_eq!(
        warehouse(&["appliances"], "广东省"),
        "WH-CENTRAL",
        "first rule wins"
    );
    assert_eq!(warehouse(&["books"], "四川省"), "WH-CENTRAL");

    assert_eq!(rules.payment_timeout.minutes(Channel::Store), 10);
    assert_eq!(rules.payment_timeout.minutes(Channel::Web), 30);
    let sla = |kind, level| rules.sla.minutes(kind, level);
    assert_eq!(sla(ExceptionKind::BlacklistedPhone, Level::L2), Some(120));
    assert_eq!(sla(ExceptionKind::SyncFailure, Level::L1), Some(240));
    assert_eq!(sla(ExceptionKind::SyncFailure, Level::L3), None);
}

#[test]
fn the_example_sets_every_key_the_rules_have() {
    let file: toml::Value = toml::from_str(&repo_file("deploy/rules/rules.toml")).unwrap();
    // The parsed rules written back out have every key, defaults included.
    let all = toml::Value::try_from(example()).unwrap();
    let set = key_paths(&file);
    let missing: Vec<String> = key_paths(&all)
        .into_iter()
        .filter(|key| !set.contains(key))
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/rules/rules.toml does not set {missing:?}"
    );
}

#[test]
fn every_key_of_the_example_is_documented() {
    let file: toml::Value = toml::from_str(&repo_file("deploy/rules/rules.toml")).unwrap();
    let docs = repo_file("docs/rules.md");
    let paths = key_paths(&file);
    assert!(paths.len() > 15, "walked only {paths:?}");
    let undocumented: Vec<&String> = paths
        .iter()
        .filter(|path| !docs.contains(&format!("`{path}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "docs/rules.md does not mention {undocumented:?}"
    );
    // `<channel>` and `<kind>` stand for these names; the reference lists them all.
    let names = Channel::ALL
        .iter()
        .map(|c| c.as_str())
        .chain(ExceptionKind::ALL.iter().map(|k| k.as_str()));
    for name in names {
        assert!(
            docs.contains(&format!("`{name}`")),
            "docs/rules.md does not list `{name}`"
        );
    }
}
