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
