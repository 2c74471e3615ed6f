//! The generator of `schema.rs`, run as a test: it reads k8s-pb's prost sources, k8s-openapi's JSON field names and `go_fields.txt`, and fails (rewriting the file) when the checked-in table is stale.
//!
//! Sources, all offline from the cargo registry (located with `cargo metadata`) or this
//! directory:
//!
//! - k8s-pb's `src/**/mod.rs` (prost-build output): every message, its fields' tags, wire kinds
//!   and message types. prost snake_cases the proto field names, which upstream takes from the
//!   JSON names, and UpperCamelCases some message names (`HostIP` → `HostIp`).
//! - k8s-openapi's `src/v1_*/**.rs`: the exact JSON field names of each definition (the
//!   `"clusterIP" => Field::Key_cluster_ip` arms of its deserializers) and the upstream spelling
//!   of each message name. A prost field matches the JSON name that is equal ignoring case and
//!   non-alphanumerics (`cluster_ip` ~ `clusterIP`, `x_kubernetes_list_type` ~
//!   `x-kubernetes-list-type`, `ref` ~ `$ref`); every field of a definition must match one.
//! - `go_fields.txt` (made by `go_fields.py` from the Go types): which scalar fields keep their
//!   zero value, which message fields are inlined into their parent, and the JSON names with
//!   acronyms, for the messages k8s-openapi lacks (old versions, `VolumeSource`, …; it must agree
//!   with k8s-openapi where both have a name). Any other field's JSON name is its prost name
//!   back in lowerCamelCase, exact for names without acronyms. Every line must name a field
//!   k8s-pb has.
//!
//! `cargo test -p k1s-apiserver --lib protobuf::generate` regenerates the file when it differs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// One field of a prost message, as read from k8s-pb.
#[derive(Debug)]
struct RawField {
    tag: u32,
    /// The prost (snake_case) name.
    name: String,
    repeated: bool,
    /// `string`, `bytes`, `bool`, `int32`, `int64`, `double`, `message`, or `map:<value kind>`.
    kind: String,
    /// For message fields and maps of messages, the resolved Rust path (`api.apps.v1.DeploymentSpec`).
    message: Option<String>,
}

#[derive(Debug)]
struct RawMessage {
    /// The Rust path, dot-separated (`api.core.v1.HostIp`).
    rust: String,
    fields: Vec<RawField>,
}

/// Lowercase and alphanumerics only: the key prost names and JSON names are matched on.
fn norm(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn lower_camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The source directories of k8s-pb and k8s-openapi as this crate resolves them.
fn crate_dirs() -> (PathBuf, PathBuf) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            // Only this platform's packages: a build downloads no others (kube-rs, a test
            // dependency, brings Android and Windows ones).
            "--filter-platform",
            "host-tuple",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let me = packages
        .iter()
        .find(|p| p["name"] == "k1s-apiserver")
        .expect("k1s-apiserver in metadata");
    let node = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve")
        .iter()
        .find(|n| n["id"] == me["id"])
        .expect("k1s-apiserver resolved");
    let dir = |crate_name: &str| -> PathBuf {
        let dep = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .find(|d| d["name"] == crate_name)
            .unwrap_or_else(|| panic!("k1s-apiserver depends on {crate_name}"));
        let package = packages
            .iter()
            .find(|p| p["id"] == dep["pkg"])
            .expect("dependency package");
        Path::new(package["manifest_path"].as_str().expect("manifest path"))
            .parent()
            .expect("crate dir")
            .to_path_buf()
    };
    (dir("k8s_pb"), dir("k8s_openapi"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Splits `a, b = "c, d", e` at top-level commas.
fn split_top(text: &str) -> Vec<String> {
    let (mut parts, mut cur, mut quoted, mut depth) = (Vec::new(), String::new(), false, 0i32);
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' | '(' if !quoted => depth += 1,
            '>' | ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        parts.push(cur.trim().to_string());
    }
    parts
}

/// Resolves a Rust type path written in module `module` to a dot-separated crate path.
fn resolve(module: &[&str], path: &str) -> String {
    let mut segments: Vec<&str> = module.to_vec();
    let mut rest = path;
    if let Some(r) = rest.strip_prefix("crate::") {
        segments.clear();
        rest = r;
    }
    while let Some(r) = rest.strip_prefix("super::") {
        segments.pop();
        rest = r;
    }
    segments.extend(rest.split("::"));
    segments.join(".")
}

/// The innermost type argument of a field type (`Option<Box<X>>` → `X`; maps → the value type).
fn inner_type(ty: &str, map: bool) -> String {
    let ty: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    let start = ty.find('<').map_or(0, |i| i + 1);
    let end = ty.rfind('>').unwrap_or(ty.len());
    let mut inner = ty[start..end].trim_end_matches(',').to_string();
    if map {
        inner = split_top(&inner).pop().expect("map value type");
    }
    for wrapper in ["::prost::alloc::boxed::Box<", "Box<"] {
        if let Some(r) = inner.strip_prefix(wrapper) {
            inner = r.trim_end_matches(['>', ',']).to_string();
        }
    }
    inner
}

fn parse_k8s_pb(root: &Path) -> Vec<RawMessage> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut messages = Vec::new();
    for file in files {
        if file.file_name().is_some_and(|n| n != "mod.rs") {
            continue;
        }
        let rel = file
            .strip_prefix(root.join("src"))
            .expect("under src")
            .parent()
            .expect("module dir");
        let module: Vec<&str> = rel
            .components()
            .map(|c| c.as_os_str().to_str().expect("utf-8 path"))
            .collect();
        let text = std::fs::read_to_string(&file).expect("read k8s-pb source");
        let code: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        let code = code.join("\n");
        let mut rest = code.as_str();
        while let Some(at) = rest.find("pub struct ") {
            rest = &rest[at + "pub struct ".len()..];
            let name_end = rest.find([' ', '{']).expect("struct name");
            let name = &rest[..name_end];
            let open = rest.find('{').expect("struct body");
            let body_end = if rest[open + 1..].starts_with('}') {
                open + 1
            } else {
                rest.find("\n}").expect("struct end")
            };
            let body = &rest[..body_end];
            rest = &rest[body_end..];
            let mut fields = Vec::new();
            for chunk in body.split("#[prost(").skip(1) {
                let (attr, decl) = chunk.split_once(")]").expect("prost attribute end");
                let decl = decl.trim();
                let decl = decl.strip_prefix("pub ").expect("pub field");
                let (field_name, ty) = decl.split_once(':').expect("field type");
                let field_name = field_name.trim().trim_start_matches("r#").to_string();
                let ty = ty.trim().trim_end_matches(',');
                let parts = split_top(attr);
                let mut tag = None;
                let mut repeated = false;
                let mut kind = String::new();
                for part in &parts {
                    if let Some(v) = part.strip_prefix("tag = ") {
                        tag = Some(v.trim_matches('"').parse().expect("numeric tag"));
                    } else if part == "repeated" {
                        repeated = true;
                    } else if let Some(v) = part.strip_prefix("btree_map = ") {
                        let (key, value) = v.trim_matches('"').split_once(',').expect("map kinds");
                        assert_eq!(key.trim(), "string", "map key kind in {name}.{field_name}");
                        kind = format!("map:{}", value.trim());
                    } else if kind.is_empty()
                        && [
                            "string", "bytes", "bool", "int32", "int64", "double", "message",
                        ]
                        .contains(&part.split(' ').next().unwrap_or(""))
                    {
                        kind = part.split(' ').next().unwrap_or("").to_string();
                    }
                }
                assert!(!kind.is_empty(), "unknown prost kind {attr:?} in {name}");
                let message = (kind == "message" || kind == "map:message")
                    .then(|| resolve(&module, &inner_type(ty, kind.starts_with("map:"))));
                fields.push(RawField {
                    tag: tag.expect("field tag"),
                    name: field_name,
                    repeated,
                    kind,
                    message,
                });
            }
            fields.sort_by_key(|f| f.tag);
            messages.push(RawMessage {
                rust: format!("{}.{name}", module.join(".")),
                fields,
            });
        }
    }
    messages
}

/// Definition name (`api.core.v1.HostIP`, k8s-pb's package spelling) → JSON field names.
fn parse_k8s_openapi(root: &Path) -> BTreeMap<String, Vec<String>> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root.join("src"))
        .expect("read k8s-openapi src")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    // The version this crate enables first; newer ones only add definitions and fields.
    versions.sort();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for version in versions {
        let mut files = Vec::new();
        rust_files(&version, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read k8s-openapi source");
            let Some(def) = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("// Generated from definition io.k8s."))
            else {
                continue;
            };
            let def = def
                .trim()
                .replace("apiextensions-apiserver", "apiextensions_apiserver")
                .replace("kube-aggregator", "kube_aggregator");
            let names = out.entry(def).or_default();
            for line in text.lines() {
                let line = line.trim();
                if let Some((json, _)) = line
                    .strip_prefix('"')
                    .and_then(|l| l.split_once("\" => Field::Key_"))
                    && !names.iter().any(|n| n == json)
                {
                    names.push(json.to_string());
                }
            }
        }
    }
    out
}

/// `go_fields.txt`: (lowercase message, normalised proto field name) → facts.
fn go_fields() -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let text = include_str!("go_fields.txt");
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = line.split_whitespace();
        let message = parts.next().expect("message").to_ascii_lowercase();
        let field = norm(parts.next().expect("field"));
        let fact = parts.next().expect("fact").to_string();
        out.entry((message, field)).or_default().push(fact);
    }
    out
}

/// Messages with their own JSON form, by upstream name.
fn special(name: &str) -> &'static str {
    match name {
        "apimachinery.pkg.apis.meta.v1.Time" => "Time",
        "apimachinery.pkg.apis.meta.v1.MicroTime" => "MicroTime",
        "apimachinery.pkg.apis.meta.v1.Duration" => "Duration",
        "apimachinery.pkg.util.intstr.IntOrString" => "IntOrString",
        "apimachinery.pkg.api.resource.Quantity"
        | "apimachinery.pkg.api.resource.QuantityValue" => "Quantity",
        "apimachinery.pkg.runtime.RawExtension" | "apimachinery.pkg.apis.meta.v1.FieldsV1" => {
            "RawJson"
        }
        "apimachinery.pkg.apis.meta.v1.Verbs" => "Items",
        _ if name.starts_with("apiextensions_apiserver.") && name.ends_with(".JSON") => "RawJson",
        _ if name.starts_with("apiextensions_apiserver.")
            && name.ends_with(".JSONSchemaPropsOrArray") =>
        {
            "SchemaOrArray"
        }
        _ if name.starts_with("apiextensions_apiserver.")
            && name.ends_with(".JSONSchemaPropsOrBool") =>
        {
            "SchemaOrBool"
        }
        _ if name.starts_with("apiextensions_apiserver.")
            && name.ends_with(".JSONSchemaPropsOrStringArray") =>
        {
            "SchemaOrStringArray"
        }
        _ if name.starts_with("api.") && name.ends_with(".ExtraValue") => "Items",
        _ => "Plain",
    }
}

/// Renders `schema.rs`.
pub(super) fn generate() -> String {
    let (pb_dir, openapi_dir) = crate_dirs();
    let raw = parse_k8s_pb(&pb_dir);
    let openapi = parse_k8s_openapi(&openapi_dir);
    let openapi_by_lower: HashMap<String, &String> = openapi
        .keys()
        .map(|k| (k.to_ascii_lowercase(), k))
        .collect();
    let short = |name: &str| name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    // Definitions by short name (`jsonschemaprops` → every version's), to spell the names of
    // messages k8s-openapi no longer has (`apiextensions.v1beta1.JSONSchemaProps`).
    let mut by_short: HashMap<String, Vec<&String>> = HashMap::new();
    for name in openapi.keys() {
        by_short.entry(short(name)).or_default().push(name);
    }
    let mut facts = go_fields();

    // Upstream spelling of each message: k8s-openapi's for the definition, or for a definition
    // of the same name in another version.
    let canonical: BTreeMap<&str, String> = raw
        .iter()
        .map(|m| {
            let name = match openapi_by_lower.get(&m.rust.to_ascii_lowercase()) {
                Some(n) => (*n).clone(),
                None => match by_short.get(&short(&m.rust)) {
                    Some(defs) => {
                        let (package, _) = m.rust.rsplit_once('.').expect("qualified");
                        let spelled = defs[0].rsplit('.').next().expect("short name");
                        format!("{package}.{spelled}")
                    }
                    None => m.rust.clone(),
                },
            };
            (m.rust.as_str(), name)
        })
        .collect();
    let mut order: Vec<&RawMessage> = raw.iter().collect();
    order.sort_by_key(|m| canonical[m.rust.as_str()].to_ascii_lowercase());
    let index: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.rust.as_str(), i))
        .collect();
    assert!(
        order.len() < usize::from(u16::MAX),
        "message index fits u16"
    );

    let mut unmatched = Vec::new();
    let mut out = String::new();
    out.push_str(
        "//! @generated by `cargo test -p k1s-apiserver --lib protobuf::generate` from k8s-pb, k8s-openapi and go_fields.txt: do not edit.\n\n\
         use super::Special::*;\nuse super::Ty::*;\nuse super::{I, K, O, R};\nuse super::{Message, f, m};\n\n\
         #[rustfmt::skip]\npub(super) static MESSAGES: &[Message] = &[\n",
    );
    for message in &order {
        let name = &canonical[message.rust.as_str()];
        let lower = name.to_ascii_lowercase();
        let special = special(name);
        let json_names = openapi.get(name);
        let mut items = Vec::new();
        for field in &message.fields {
            let key = norm(&field.name);
            let json = json_names
                .and_then(|names| names.iter().find(|n| norm(n) == key))
                .cloned();
            let fact = facts
                .remove(&(lower.clone(), key.clone()))
                .unwrap_or_default();
            let inline = fact.iter().any(|f| f == "inline");
            let go_json = fact
                .iter()
                .find_map(|f| f.strip_prefix("json="))
                .map(str::to_string);
            if let (Some(openapi), Some(go)) = (&json, &go_json) {
                assert_eq!(openapi, go, "{name}.{}: JSON names disagree", field.name);
            }
            let json = json.or(go_json);
            if json.is_none() && json_names.is_some() && special == "Plain" && !inline {
                unmatched.push(format!("{name}.{}", field.name));
            }
            // Fields go_fields.txt has no spelling for have no acronym: the proto name (which
            // is the JSON name) is prost's snake_case undone.
            let json = json.unwrap_or_else(|| lower_camel(&field.name));
            let target = field.message.as_deref().map(|m| {
                *index
                    .get(m)
                    .unwrap_or_else(|| panic!("{name}.{}: unknown message {m}", field.name))
            });
            let ty = match (field.kind.as_str(), target) {
                ("string", _) => "Str".to_string(),
                ("bytes", _) => "Bytes".to_string(),
                ("bool", _) => "Bool".to_string(),
                ("int32", _) => "Int32".to_string(),
                ("int64", _) => "Int64".to_string(),
                ("double", _) => "Double".to_string(),
                ("message", Some(i)) => format!("Msg({i})"),
                ("map:string", _) => "MapStr".to_string(),
                ("map:bytes", _) => "MapBytes".to_string(),
                ("map:message", Some(i)) => format!("MapMsg({i})"),
                (kind, _) => panic!("{name}.{}: unsupported kind {kind}", field.name),
            };
            let scalar = !field.kind.starts_with("map:") && field.kind != "message";
            let mut flags = Vec::new();
            if field.repeated {
                flags.push("R");
            }
            for fact in &fact {
                match fact.as_str() {
                    "pointer" | "always" if scalar => flags.push("K"),
                    "inline" if field.kind == "message" => flags.push("I"),
                    _ if fact.starts_with("json=") => {}
                    other => panic!(
                        "{name}.{}: fact {other} on a {} field",
                        field.name, field.kind
                    ),
                }
            }
            // The special messages' own fields are read by tag, zeros and all.
            if special != "Plain" && scalar && !flags.contains(&"K") {
                flags.push("K");
            }
            let flags = if flags.is_empty() {
                "O".to_string()
            } else {
                flags.join("|")
            };
            items.push(format!("f({}, {json:?}, {ty}, {flags})", field.tag));
        }
        let head = format!("    m({name:?}, {special}, &[");
        let mut line = head.clone();
        let mut lines = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let piece = if i + 1 == items.len() {
                item.clone()
            } else {
                format!("{item}, ")
            };
            if line.len() + piece.len() > 100 && line != head {
                lines.push(line.trim_end().to_string());
                line = format!("        {piece}");
            } else {
                line.push_str(&piece);
            }
        }
        line.push_str("]),");
        lines.push(line);
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out.push_str("];\n");
    assert!(
        unmatched.is_empty(),
        "prost fields without a JSON name in k8s-openapi: {unmatched:?}"
    );
    let stale: BTreeSet<String> = facts.keys().map(|(m, f)| format!("{m}.{f}")).collect();
    assert!(
        stale.is_empty(),
        "go_fields.txt names fields k8s-pb does not have: {stale:?}"
    );
    out
}

#[test]
fn schema_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/protobuf/schema.rs");
    let fresh = generate();
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != fresh {
        std::fs::write(&path, &fresh).expect("write schema.rs");
        panic!(
            "{} was stale and has been regenerated; review and commit it",
            path.display()
        );
    }
}
