//! Fuzz targets for every decoder of untrusted input (selectors, patches, protobuf and JSON bodies, query strings), run on stable as regression tests over a checked-in corpus plus seeded random inputs.
//!
//! Each target takes raw bytes and must return without panicking, whatever the bytes. The same
//! functions can be driven by a coverage-guided fuzzer (`cargo +nightly fuzz`) where a nightly
//! toolchain exists; every crash found joins `fuzz-corpus/<target>/`.

use arbitrary::{Arbitrary, Unstructured};
use serde_json::Value;

use crate::patch::{self, PatchKind};
use crate::registry::all;
use crate::request::{Query, route};
use crate::selector::{FieldSelector, LabelSelector};
use crate::strategy::Strategy;

/// A patch request: a document, a patch body and its kind.
#[derive(Debug, Arbitrary)]
struct PatchInput {
    kind: u8,
    original: String,
    patch: Vec<u8>,
}

pub fn selector(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(sel) = LabelSelector::parse(&text) {
        sel.matches(&serde_json::json!({"metadata": {"labels": {"a": "b"}}}));
    }
    let _ = FieldSelector::parse(&text, crate::strategy::EVENTS.field_labels());
}

pub fn patches(data: &[u8]) {
    let Ok(input) = PatchInput::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let kind = match input.kind % 3 {
        0 => PatchKind::Json,
        1 => PatchKind::Merge,
        _ => PatchKind::Strategic,
    };
    let original: Value = serde_json::from_str(&input.original)
        .unwrap_or_else(|_| serde_json::json!({"metadata": {"name": "a"}}));
    let _ = patch::apply(kind, &original, &input.patch, None);
}

pub fn protobuf(data: &[u8]) {
    for r in all().iter() {
        let _ = crate::protobuf::decode(r, data);
        let mut framed = b"k8s\0".to_vec();
        framed.extend_from_slice(data);
        let _ = crate::protobuf::decode(r, &framed);
    }
    // The bytes as one typed message past the envelope, of a kind picked by the bytes, so every
    // kind gets its share of inputs: the served ones, and kinds that only arrive in bodies
    // (subresources, nested schemas, raw JSON).
    let extra = [
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authorization.k8s.io/v1", "SubjectAccessReview"),
        ("policy/v1", "Eviction"),
        ("autoscaling/v1", "Scale"),
        ("apps/v1", "ControllerRevision"),
    ];
    let kinds: Vec<(String, &str)> = all()
        .iter()
        .map(|r| (r.api_version(), r.kind))
        .chain(extra.iter().map(|(v, k)| (v.to_string(), *k)))
        .collect();
    let pick = data.iter().fold(data.len(), |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(*b))
    });
    let (api_version, kind) = &kinds[pick % kinds.len()];
    let _ = crate::protobuf::decode_raw(api_version, kind, data);
    // A whole framed body (the corpus holds some) by its own kind, and every truncation of it.
    if data.starts_with(b"k8s\0") {
        for end in 0..=data.len() {
            let _ = crate::protobuf::decode_object(&data[..end]);
        }
    }
}

pub fn request_line(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (path, query) = text.split_once('?').unwrap_or((&text, ""));
    let query = Query::parse(Some(query));
    for method in [
        http::Method::GET,
        http::Method::POST,
        http::Method::PUT,
        http::Method::PATCH,
        http::Method::DELETE,
    ] {
        let _ = route(&method, path, &query);
    }
}

/// A request body as JSON or YAML, then every resource's defaulting and validation over it
/// (strategies walk untrusted objects with many pointers; none may panic).
pub fn bodies(data: &[u8]) {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(data)
        .ok()
        .or_else(|| serde_norway::from_slice(data).ok());
    // Bodies reach the strategies only as objects.
    let Some(object) = parsed.filter(serde_json::Value::is_object) else {
        return;
    };
    for r in all().iter() {
        let mut created = object.clone();
        let _ = r.strategy.prepare_create(&mut created);
        let mut updated = object.clone();
        let _ = r.strategy.prepare_update(&created, &mut updated);
        let _ = r.strategy.warnings(&updated);
        let _ = crate::object::validate_metadata(&updated);
    }
}

/// Structural schemas: the input as both a schema and a value (CRD validation and defaulting),
/// and as an object for managed fields and server-side apply.
pub fn schemas(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let mut defaulted = value.clone();
    crate::structural::default_and_drop_nulls(&value, &mut defaulted);
    let mut causes = Vec::new();
    crate::structural::validate(&value, &defaulted, "", &mut causes);
    let mut rules = Vec::new();
    crate::structural::validation_rules(&value, "", &mut rules);
    let write = crate::managed::Write {
        manager: "fuzz",
        api_version: "v1",
        subresource: "",
        scope: crate::managed::Scope::Main,
        now: "2026-01-01T00:00:00Z",
    };
    let mut recorded = defaulted.clone();
    crate::managed::record_update(Some(&value), &mut recorded, None, &write);
    let _ = crate::managed::apply(Some(&recorded), &value, None, &write, false, ("", "x", "x"));
    let _ = crate::managed::apply(None, &value, None, &write, true, ("", "x", "x"));
}

/// Printer-column JSONPath expressions over a fixed object.
pub fn jsonpath(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let object = serde_json::json!({"spec": {"a": [1, {"b": "c"}], "d": {"e.f": true}}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let _ = crate::jsonpath::find(&object, &text);
    let _ = crate::jsonpath::cell(&object, &text, "string");
    let _ = crate::jsonpath::is_supported(&text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    type Target = fn(&[u8]);

    const TARGETS: &[(&str, Target)] = &[
        ("selector", selector),
        ("patches", patches),
        ("protobuf", protobuf),
        ("request_line", request_line),
        ("bodies", bodies),
        ("schemas", schemas),
        ("jsonpath", jsonpath),
    ];

    /// Every input checked in under `fuzz-corpus/<target>/`.
    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz-corpus")
            .join(target);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .collect()
    }

    /// Random inputs biased towards the characters each grammar cares about.
    fn random_inputs(seed: u64, count: usize) -> Vec<Vec<u8>> {
        const ALPHABET: &[u8] = b"abc=!,() in notin{}[]\":/$patch-.0k8s\0\x0a\x12\xff";
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                let len = rng.random_range(0..64);
                (0..len)
                    .map(|_| {
                        if rng.random_bool(0.7) {
                            ALPHABET[rng.random_range(0..ALPHABET.len())]
                        } else {
                            rng.random()
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn targets_survive_corpus_and_random_inputs() {
        for (name, target) in TARGETS {
            let inputs: Vec<Vec<u8>> = corpus(name)
                .into_iter()
                .chain(random_inputs(0x006b_3173, 20_000))
                .collect();
            for input in inputs {
                target(&input);
            }
        }
    }
}
