//! The OpenAPI document (`/openapi.json`) against the server: what can be checked in Rust. The
//! rest — every response of the running node against the document — is schemathesis's job in CI
//! (`.ci/schemathesis.sh`).

use std::collections::BTreeSet;

use hukou_sync::domain::case::state::{CaseState, DenialReason};
use hukou_sync::domain::child::{
    Benefit, Category, ChildField, EducationStatus, HealthStatus, LivingStatus, ParentSituation,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "patch", "put", "delete"];

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), op));
            }
        }
    }
    out
}

#[test]
fn operation_ids_are_present_and_unique() {
    let doc = hukou_sync::api::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut seen = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(seen.insert(id.to_owned()), "operationId {id} is used twice");
    }
}

/// The admin routes the handlers declare (`#[get("/api/v1/…")]` in `src/api/*.rs`; the peer
/// listener's routes in `src/api/peer/` are not in this document).
fn declared_routes() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let line = line.trim();
            for m in METHODS {
                if let Some(rest) = line.strip_prefix(&format!("#[{m}(\"")) {
                    let route = rest.split('"').next().unwrap();
                    out.insert((m.to_owned(), route.to_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn every_route_has_an_operation_and_every_operation_a_route() {
    let doc = hukou_sync::api::document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let declared = declared_routes();
    assert!(declared.len() > 20, "found only {declared:?}");
    let undocumented: Vec<_> = declared.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&declared).collect();
    assert!(
        undocumented.is_empty(),
        "routes without an operation: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "operations without a route: {phantom:?}"
    );
    // And each handler is registered with the app.
    let mod_rs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/mod.rs")).unwrap();
    let registered = mod_rs.matches("    .service(").count();
    assert_eq!(
        registered,
        declared.len(),
        "routes declared vs registered in api::configure"
    );
}

#[test]
fn every_api_operation_states_its_security_and_error_statuses() {
    let doc = hukou_sync::api::document();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(
        schemes["session"]["name"],
        hukou_sync::accounts::SESSION_COOKIE
    );
    assert_eq!(schemes["csrf"]["name"], "X-CSRF-Token");
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        for (status, r) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    r["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status} is not problem+json"
                );
            }
        }
        if !path.starts_with("/api/v1/") {
            assert!(op.get("security").is_none(), "{path} is open");
            continue;
        }
        let security = op["security"].as_array().unwrap();
        assert!(security.iter().any(|s| s.get("bearer").is_some()));
        let session = security
            .iter()
            .find(|s| s.get("session").is_some())
            .unwrap();
        assert_eq!(
            session.get("csrf").is_some(),
            method != "get",
            "{method} {path}"
        );
        for status in ["400", "401", "403", "503"] {
            assert!(
                responses.contains_key(status),
                "{method} {path} lacks {status}"
            );
        }
        if op.get("requestBody").is_some() {
            assert!(responses.contains_key("413"), "{method} {path} lacks 413");
            assert!(responses.contains_key("415"), "{method} {path} lacks 415");
        }
        if op
            .pointer("/requestBody/content/application~1json")
            .is_some()
        {
            for status in ["413", "415", "422"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
        }
        if path.contains('{') {
            assert!(responses.contains_key("404"), "{method} {path} lacks 404");
        }
        for p in op["parameters"].as_array().into_iter().flatten() {
            match p["name"].as_str().unwrap() {
                "limit" | "stale_days" | "days" => {
                    let s = &p["schema"];
                    assert!(
                        s["minimum"].is_u64() && s["maximum"].is_u64(),
                        "{method} {path} {} has no bounds",
                        p["name"]
                    );
                }
                "case_id" => assert_eq!(p["schema"]["format"], "uuid"),
                "id_number" => assert!(p["schema"]["pattern"].is_string()),
                _ => {}
            }
        }
    }
}

/// Each value serde writes is in the schema's `enum`, and each value the schema lists is one
/// serde reads.
fn same_as_serde<T: Serialize + DeserializeOwned + std::fmt::Debug + Copy>(
    all: &[T],
    listed: &Value,
    what: &str,
) {
    let listed: Vec<Value> = listed
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no enum list"))
        .clone();
    for v in all {
        let wire = serde_json::to_value(v).unwrap();
        assert!(
            listed.contains(&wire),
            "{what}: {wire} is not in {listed:?}"
        );
    }
    for l in &listed {
        serde_json::from_value::<T>(l.clone())
            .unwrap_or_else(|e| panic!("{what}: the document lists {l}, which serde refuses: {e}"));
    }
}

#[test]
fn enums_are_spelled_as_serde_spells_them() {
    let doc = hukou_sync::api::document();
    let schemas = &doc["components"]["schemas"];
    same_as_serde(Benefit::ALL, &schemas["Benefit"]["enum"], "Benefit");
    same_as_serde(
        ParentSituation::ALL,
        &schemas["ParentSituation"]["enum"],
        "ParentSituation",
    );
    same_as_serde(Category::ALL, &schemas["Category"]["enum"], "Category");
    same_as_serde(
        LivingStatus::ALL,
        &schemas["LivingStatus"]["enum"],
        "LivingStatus",
    );
    same_as_serde(
        EducationStatus::ALL,
        &schemas["EducationStatus"]["enum"],
        "EducationStatus",
    );
    same_as_serde(
        HealthStatus::ALL,
        &schemas["HealthStatus"]["enum"],
        "HealthStatus",
    );
    let params = doc["paths"]["/api/v1/cases"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let state = params.iter().find(|p| p["name"] == "state").unwrap();
    same_as_serde(&CaseState::ALL, &state["schema"]["enum"], "CaseState");
    let children = doc["paths"]["/api/v1/children"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let category = children.iter().find(|p| p["name"] == "category").unwrap();
    same_as_serde(
        Category::ALL,
        &category["schema"]["enum"],
        "category filter",
    );
    let deny = schemas["Transition"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["properties"]["action"]["const"] == "deny")
        .unwrap();
    same_as_serde(
        &DenialReason::ALL,
        &deny["properties"]["reason_code"]["enum"],
        "DenialReason",
    );
}

#[test]
fn the_create_body_is_the_full_record() {
    let doc = hukou_sync::api::document();
    let body = &doc["paths"]["/api/v1/children"]["post"]["requestBody"];
    assert_eq!(body["required"], true);
    assert_eq!(
        body["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewChild"
    );
    let new_child = &doc["components"]["schemas"]["NewChild"];
    let props: BTreeSet<&str> = new_child["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let fields: BTreeSet<&str> = ChildField::ALL.iter().map(|f| f.name()).collect();
    assert_eq!(props, fields);
    assert_eq!(new_child["additionalProperties"], false);
    let required: BTreeSet<&str> = new_child["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        BTreeSet::from(["id_number", "name", "hukou_region", "residence_region"])
    );
}

/// Risk on one scale: the record, list rows and files carry the level as an integer 1–4 and the
/// local label beside it; the create and patch bodies also take the label people type.
#[test]
fn the_risk_level_is_an_integer_one_to_four_and_the_label_a_string() {
    let doc = hukou_sync::api::document();
    let schemas = &doc["components"]["schemas"];
    for (schema, prop) in [
        ("ChildRecord", "risk_level"),
        ("ChildSummary", "risk_level"),
    ] {
        let p = &schemas[schema]["properties"][prop];
        assert_eq!(
            p["type"],
            serde_json::json!(["integer", "null"]),
            "{schema}"
        );
        assert_eq!(p["minimum"], 1, "{schema}");
        assert_eq!(p["maximum"], 4, "{schema}");
    }
    for schema in ["ChildSummary", "ChildFile"] {
        let p = &schemas[schema]["properties"]["risk_label"];
        assert_eq!(p["type"], serde_json::json!(["string", "null"]), "{schema}");
    }
    for schema in ["NewChild", "ChildPatch"] {
        let any = schemas[schema]["properties"]["risk_level"]["anyOf"]
            .as_array()
            .unwrap();
        assert!(any.contains(&serde_json::json!({"type": "integer", "minimum": 1, "maximum": 4})));
        assert!(any.iter().any(|s| s["type"] == "string"), "{schema}");
        assert!(any.iter().any(|s| s["type"] == "null"), "{schema}");
    }
}
