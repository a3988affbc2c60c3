use std::collections::BTreeSet;

use super::openapi::{OPERATIONS, document};

#[test]
fn every_admin_route_is_in_the_openapi_document_and_nothing_else() {
    let routed: BTreeSet<(String, String)> = crate::admin::admin_routes()
        .into_iter()
        .map(|(method, path, _)| (method.as_str().to_owned(), path.to_owned()))
        .collect();
    let doc = document();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    assert_eq!(routed, documented);
    assert_eq!(
        OPERATIONS.len(),
        documented.len(),
        "one operation per route"
    );
    assert_eq!(doc["openapi"], "3.1.0");
}

#[test]
fn path_parameters_of_every_route_are_documented() {
    for op in OPERATIONS {
        for segment in op.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(
                    op.params.iter().any(|(n, _, _)| *n == name),
                    "{} {} does not document `{name}`",
                    op.method,
                    op.path
                );
            }
        }
    }
}

#[test]
fn every_schema_reference_resolves() {
    let doc = document();
    let text = doc.to_string();
    for piece in text.split("\"#/components/").skip(1) {
        let reference = piece.split('"').next().unwrap_or_default();
        let mut node = &doc["components"];
        for part in reference.split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "unresolved #/components/{reference}");
    }
}
