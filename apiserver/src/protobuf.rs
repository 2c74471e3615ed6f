//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), as kubectl's typed clients send them, decoded by one schema-driven decoder into the JSON a JSON client would have sent.
//!
//! The wire format is the 4-byte magic `k8s\0` followed by a `runtime.Unknown` envelope whose
//! `typeMeta` names the object's apiVersion and kind and whose `raw` field holds the object in
//! upstream's `generated.proto` encoding. The envelope's kind and apiVersion pick the message;
//! the API group maps to a proto package (`apps` → `api.apps`, `rbac.authorization.k8s.io` →
//! `api.rbac`, `apiextensions.k8s.io` → `apiextensions_apiserver.pkg.apis.apiextensions`, …).
//! A kind without a message gets 415, malformed bytes 400; nothing panics (lengths are checked,
//! nesting is bounded by [`MAX_DEPTH`]).
//!
//! `schema.rs` is the table the decoder walks: every message of k8s-pb with each field's tag,
//! JSON name, wire kind and flags. It is generated (see `generate.rs`) and checked in; a test
//! fails when it is stale.
//!
//! # What becomes JSON
//!
//! Messages become objects keyed by their JSON names, repeated fields arrays, maps objects,
//! `bytes` base64 strings. Upstream's special types take their JSON form: `meta.v1.Time` an
//! RFC 3339 string with seconds (empty message: absent, as Go's `null`), `MicroTime` the same
//! with six fractional digits, `Duration` a Go duration string (`1h0m0s`), `IntOrString` a number
//! or a string, `Quantity` its string, `RawExtension`, `FieldsV1` and apiextensions' `JSON` the
//! JSON they embed (an embedded `k8s\0` envelope is decoded in turn), the `items` wrappers
//! (`Verbs`, the `ExtraValue`s) arrays, and `JSONSchemaPropsOr{Array,Bool,StringArray}` whichever
//! side is set. Embedded structs (`json:",inline"`, e.g. `Probe.handler`, `Volume.volumeSource`)
//! are flattened into their parent, as Go's JSON does.
//!
//! # Zero values
//!
//! Go's protobuf marshaller writes every non-pointer field, zero or not, and a pointer field only
//! when it is set; Go's JSON leaves out a field tagged `omitempty` when it is zero (nil, for a
//! pointer). So a scalar (string, bool, number, bytes) that arrives with its zero value is kept
//! exactly when the Go field is a pointer (it was set on purpose: `replicas: 0`,
//! `automountServiceAccountToken: false`, `storageClassName: ""`) or has no `omitempty` (Go's
//! JSON always writes it: `PriorityClass.value`, `ContainerPort.containerPort`,
//! `RoleRef.apiGroup`); otherwise it is dropped, as a JSON client would not have sent it. The
//! facts come from the Go types (`go_fields.txt`, flag `K` in the table). Messages are always
//! kept, even empty (`"strategy": {}`, `"status": {}`), as Go's JSON writes non-pointer structs;
//! repeated fields and maps are absent when empty, as on the wire.

#[cfg(test)]
mod generate;
mod schema;

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message as _;
use serde_json::{Map, Value};

use crate::registry::Resource;
use crate::status::{ApiError, ApiResult};

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// How deep messages may nest (a CRD's schema nests one level per schema level).
pub const MAX_DEPTH: usize = 100;

/// One protobuf message of the schema table.
#[derive(Debug)]
pub(crate) struct Message {
    /// The proto name with k8s-pb's package, upstream's spelling: `api.apps.v1.Deployment`.
    pub name: &'static str,
    pub special: Special,
    /// Sorted by tag.
    pub fields: &'static [Field],
}

/// One field of a [`Message`].
#[derive(Debug)]
pub(crate) struct Field {
    pub tag: u32,
    pub json: &'static str,
    pub ty: Ty,
    /// [`R`], [`K`] and [`I`].
    pub flags: u8,
}

/// A field's wire kind. Messages are indexes into the table; map keys are always strings.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Str,
    Bytes,
    Bool,
    Int32,
    Int64,
    Double,
    Msg(u16),
    MapStr,
    MapBytes,
    MapMsg(u16),
}

/// Messages whose JSON form is not an object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    Plain,
    Time,
    MicroTime,
    Duration,
    IntOrString,
    Quantity,
    RawJson,
    Items,
    SchemaOrArray,
    SchemaOrBool,
    SchemaOrStringArray,
}

/// No flags.
const O: u8 = 0;
/// Repeated.
const R: u8 = 1;
/// Keep a zero value (a Go pointer, or no `omitempty`).
const K: u8 = 2;
/// Embedded struct: its fields go into the parent object.
const I: u8 = 4;

const fn m(name: &'static str, special: Special, fields: &'static [Field]) -> Message {
    Message {
        name,
        special,
        fields,
    }
}

const fn f(tag: u32, json: &'static str, ty: Ty, flags: u8) -> Field {
    Field {
        tag,
        json,
        ty,
        flags,
    }
}

fn bad(detail: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("error decoding protobuf request body: {detail}"))
}

/// Decode a protobuf body sent to `resource` into its JSON form. The envelope's kind and
/// apiVersion win; the resource's stand in when the envelope leaves them out.
pub fn decode(resource: &Resource, body: &[u8]) -> ApiResult<Value> {
    let (type_meta, raw) = envelope(body)?;
    let kind = type_meta
        .kind
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| resource.kind.to_string());
    let api_version = type_meta
        .api_version
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| resource.api_version());
    decode_raw(&api_version, &kind, &raw)
}

/// Decode any framed object by its envelope's kind and apiVersion alone (subresource bodies such
/// as TokenRequest, Eviction, Scale and Binding).
#[allow(
    dead_code,
    reason = "for the subresource handlers (token, eviction, binding) still to come"
)]
pub fn decode_object(body: &[u8]) -> ApiResult<Value> {
    decode_nested(body, 0)
        .map_err(bad)?
        .ok_or_else(|| bad("the envelope names no kind and apiVersion"))
}

/// Decode the typed bytes of one object of `kind` in `api_version` (without the envelope).
pub fn decode_raw(api_version: &str, kind: &str, raw: &[u8]) -> ApiResult<Value> {
    let index =
        find(api_version, kind).ok_or_else(|| ApiError::unsupported_media_type(MEDIA_TYPE))?;
    object(api_version, kind, index, raw, 0).map_err(bad)
}

fn envelope(body: &[u8]) -> ApiResult<(k8s_pb::apimachinery::pkg::runtime::TypeMeta, Vec<u8>)> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s protobuf prefix"))?;
    let unknown = Unknown::decode(envelope).map_err(bad)?;
    Ok((
        unknown.type_meta.unwrap_or_default(),
        unknown.raw.unwrap_or_default(),
    ))
}

/// An embedded envelope (in a `RawExtension`); `None` when it names no kind.
fn decode_nested(body: &[u8], depth: usize) -> Result<Option<Value>, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("missing the k8s protobuf prefix")?;
    let unknown = Unknown::decode(envelope).map_err(|e| e.to_string())?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let (Some(kind), Some(api_version)) = (type_meta.kind, type_meta.api_version) else {
        return Ok(None);
    };
    let index = find(&api_version, &kind)
        .ok_or_else(|| format!("no protobuf message for {kind} in {api_version}"))?;
    object(
        &api_version,
        &kind,
        index,
        &unknown.raw.unwrap_or_default(),
        depth,
    )
    .map(Some)
}

/// `kind` and `apiVersion` first, then the decoded fields.
fn object(
    api_version: &str,
    kind: &str,
    index: u16,
    raw: &[u8],
    depth: usize,
) -> Result<Value, String> {
    let mut out = Map::new();
    out.insert("kind".into(), Value::String(kind.into()));
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    match message(index, raw, depth)? {
        Some(Value::Object(fields)) => out.extend(fields),
        _ => return Err(format!("{kind} is not an object type")),
    }
    Ok(Value::Object(out))
}

/// The proto package of an API group.
fn package(group: &str) -> Option<String> {
    let fixed = match group {
        "" => "api.core",
        "apiextensions.k8s.io" => "apiextensions_apiserver.pkg.apis.apiextensions",
        "apiregistration.k8s.io" => "kube_aggregator.pkg.apis.apiregistration",
        "meta.k8s.io" => "apimachinery.pkg.apis.meta",
        "internal.apiserver.k8s.io" => "api.apiserverinternal",
        "metrics.k8s.io" => "metrics.pkg.apis.metrics",
        // The other built-in groups are named after their package: `apps`, `policy`,
        // `rbac.authorization.k8s.io`, `flowcontrol.apiserver.k8s.io`, ….
        _ => {
            let (first, rest) = group.split_once('.').unwrap_or((group, ""));
            return (rest.is_empty() || rest.ends_with("k8s.io")).then(|| format!("api.{first}"));
        }
    };
    Some(fixed.to_string())
}

/// The table index of `kind`'s message in `api_version` (names match ignoring case: prost and
/// k8s-openapi spell some differently, and kinds never differ only in case).
fn find(api_version: &str, kind: &str) -> Option<u16> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    if version.is_empty() || kind.is_empty() || version.contains('.') || kind.contains('.') {
        return None;
    }
    let mut name = format!("{}.{version}.{kind}", package(group)?);
    name.make_ascii_lowercase();
    static INDEX: OnceLock<HashMap<String, u16>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        (0u16..)
            .zip(schema::MESSAGES)
            .map(|(i, m)| (m.name.to_ascii_lowercase(), i))
            .collect()
    });
    index.get(&name).copied()
}

/// One value read off the wire.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    /// No Kubernetes message has a 32-bit field; only skipped.
    Fixed32,
    Len(&'a [u8]),
}

/// A protobuf wire reader over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.buf.len() {
            return Err(format!(
                "field of {n} bytes with only {} left",
                self.buf.len()
            ));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next field's tag and value, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u32, Wire<'a>)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag =
            u32::try_from(key >> 3).map_err(|_| format!("field number {} too large", key >> 3))?;
        if tag == 0 {
            return Err("field number 0".into());
        }
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().map_err(|_| "short fixed64")?,
            )),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
                Wire::Len(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            other => return Err(format!("unsupported wire type {other} for field {tag}")),
        };
        Ok(Some((tag, wire)))
    }
}

/// What [`walk`] reports for one occurrence of a field.
enum Item {
    /// A value; `None` for a message whose JSON is null (a zero `Time`).
    Value(Option<Value>),
    /// A map entry.
    Entry(String, Option<Value>),
}

/// Reads every field of message `index` in `bytes`, decoding values as their JSON; repeated
/// numbers arrive one by one whether packed or not. Unknown fields are skipped, as upstream does.
fn walk(
    index: u16,
    bytes: &[u8],
    depth: usize,
    mut visit: impl FnMut(&'static Field, Item) -> Result<(), String>,
) -> Result<(), String> {
    let msg = &schema::MESSAGES[usize::from(index)];
    let mut reader = Reader { buf: bytes };
    while let Some((tag, wire)) = reader.field()? {
        let Some(field) = msg.fields.iter().find(|f| f.tag == tag) else {
            continue;
        };
        let name = || format!("{}.{}", msg.name, field.json);
        match (field.ty, wire) {
            (Ty::MapStr | Ty::MapBytes | Ty::MapMsg(_), Wire::Len(entry)) => {
                let (key, value) =
                    map_entry(field.ty, entry, depth).map_err(|e| format!("{}: {e}", name()))?;
                visit(field, Item::Entry(key, value))?;
            }
            (Ty::Bool | Ty::Int32 | Ty::Int64 | Ty::Double, Wire::Len(packed))
                if field.flags & R != 0 =>
            {
                let mut packed = Reader { buf: packed };
                while !packed.buf.is_empty() {
                    let wire = match field.ty {
                        Ty::Double => Wire::Fixed64(u64::from_le_bytes(
                            packed.take(8)?.try_into().map_err(|_| "short fixed64")?,
                        )),
                        _ => Wire::Varint(packed.varint()?),
                    };
                    visit(
                        field,
                        Item::Value(Some(
                            scalar(field.ty, wire).map_err(|e| format!("{}: {e}", name()))?,
                        )),
                    )?;
                }
            }
            (Ty::Msg(target), Wire::Len(inner)) => {
                visit(field, Item::Value(message(target, inner, depth + 1)?))?;
            }
            (ty, wire) => {
                let value = scalar(ty, wire).map_err(|e| format!("{}: {e}", name()))?;
                visit(field, Item::Value(Some(value)))?;
            }
        }
    }
    Ok(())
}

/// A scalar field's JSON value.
fn scalar(ty: Ty, wire: Wire<'_>) -> Result<Value, String> {
    Ok(match (ty, wire) {
        (Ty::Str, Wire::Len(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        (Ty::Bytes, Wire::Len(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Ty::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        // Go truncates varints to the field's width.
        (Ty::Int32, Wire::Varint(v)) => Value::from(v as i32),
        (Ty::Int64, Wire::Varint(v)) => Value::from(v as i64),
        (Ty::Double, Wire::Fixed64(v)) => serde_json::Number::from_f64(f64::from_bits(v))
            .map(Value::Number)
            .ok_or("a number JSON cannot carry")?,
        _ => return Err("wrong wire type".into()),
    })
}

/// One map entry: key 1, value 2 (missing ones are zero, as upstream decodes them).
fn map_entry(ty: Ty, entry: &[u8], depth: usize) -> Result<(String, Option<Value>), String> {
    let mut reader = Reader { buf: entry };
    let (mut key, mut value) = (String::new(), None);
    while let Some((tag, wire)) = reader.field()? {
        match (tag, wire, ty) {
            (1, Wire::Len(b), _) => key = String::from_utf8_lossy(b).into_owned(),
            (2, Wire::Len(b), Ty::MapMsg(target)) => value = Some(message(target, b, depth + 1)?),
            (2, wire, Ty::MapStr) => value = Some(Some(scalar(Ty::Str, wire)?)),
            (2, wire, _) => value = Some(Some(scalar(Ty::Bytes, wire)?)),
            (1, _, _) => return Err("map key with a wrong wire type".into()),
            _ => {}
        }
    }
    let value = match (value, ty) {
        (Some(v), _) => v,
        (None, Ty::MapMsg(target)) => message(target, &[], depth + 1)?,
        (None, _) => Some(Value::String(String::new())),
    };
    Ok((key, value))
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// Message `index` as JSON; `None` where Go's JSON writes `null` (a zero `Time`, an empty
/// `RawExtension`).
fn message(index: u16, bytes: &[u8], depth: usize) -> Result<Option<Value>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("objects nested deeper than {MAX_DEPTH} levels"));
    }
    let msg = &schema::MESSAGES[usize::from(index)];
    if msg.special == Special::Plain {
        return plain(index, bytes, depth).map(|o| Some(Value::Object(o)));
    }
    // Special messages: their fields by tag, in wire order.
    let mut fields: Vec<(u32, Option<Value>)> = Vec::new();
    walk(index, bytes, depth, |field, item| {
        if let Item::Value(v) = item {
            fields.push((field.tag, v));
        }
        Ok(())
    })?;
    let last = |tag: u32| -> Option<Value> {
        fields
            .iter()
            .rev()
            .find(|(t, _)| *t == tag)
            .and_then(|(_, v)| v.clone())
    };
    let all = |tag: u32| -> Vec<Value> {
        fields
            .iter()
            .filter(|(t, _)| *t == tag)
            .filter_map(|(_, v)| v.clone())
            .collect()
    };
    let int = |tag: u32| last(tag).and_then(|v| v.as_i64()).unwrap_or(0);
    Ok(match msg.special {
        Special::Plain => unreachable!("handled above"),
        Special::Time if bytes.is_empty() => None,
        Special::Time => Some(Value::String(time(int(1), 0, false)?)),
        Special::MicroTime if bytes.is_empty() => None,
        Special::MicroTime => Some(Value::String(time(int(1), int(2), true)?)),
        Special::Duration => Some(Value::String(go_duration(int(1)))),
        Special::IntOrString if int(1) == 1 => {
            Some(last(3).unwrap_or_else(|| Value::String(String::new())))
        }
        Special::IntOrString => Some(Value::from(int(2))),
        Special::Quantity => Some(match last(1) {
            Some(Value::String(s)) if !s.is_empty() => Value::String(s),
            _ => Value::String("0".into()),
        }),
        Special::RawJson => {
            let mut reader = Reader { buf: bytes };
            let mut raw: &[u8] = &[];
            while let Some((tag, wire)) = reader.field()? {
                if let (1, Wire::Len(b)) = (tag, wire) {
                    raw = b;
                }
            }
            if raw.is_empty() {
                None
            } else if raw.starts_with(MAGIC) {
                decode_nested(raw, depth + 1)?
            } else {
                Some(
                    serde_json::from_slice(raw)
                        .map_err(|e| format!("{}: invalid embedded JSON: {e}", msg.name))?,
                )
            }
        }
        Special::Items => Some(Value::Array(all(1))),
        Special::SchemaOrArray => match all(2) {
            items if !items.is_empty() => Some(Value::Array(items)),
            _ => last(1),
        },
        Special::SchemaOrBool => last(2).or(Some(Value::Bool(last(1) == Some(Value::Bool(true))))),
        Special::SchemaOrStringArray => match all(2) {
            items if !items.is_empty() => Some(Value::Array(items)),
            _ => last(1),
        },
    })
}

/// A plain message: an object of its fields under their JSON names.
fn plain(index: u16, bytes: &[u8], depth: usize) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    walk(index, bytes, depth, |field, item| {
        let key = field.json;
        match item {
            Item::Entry(k, v) => {
                let map = out.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(k, v.unwrap_or(Value::Null));
                }
            }
            Item::Value(None) => {}
            Item::Value(Some(Value::Object(inner))) if field.flags & I != 0 => out.extend(inner),
            Item::Value(Some(v)) if field.flags & R != 0 => {
                if let Value::Array(items) =
                    out.entry(key).or_insert_with(|| Value::Array(Vec::new()))
                {
                    items.push(v);
                }
            }
            Item::Value(Some(v)) => {
                let scalar = !matches!(field.ty, Ty::Msg(_));
                if scalar && field.flags & K == 0 && is_zero(&v) {
                    out.remove(key);
                } else {
                    out.insert(key.to_string(), v);
                }
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// `seconds` (and, for `MicroTime`, microseconds of `nanos`) since the epoch as Go's JSON writes
/// them: RFC 3339 in UTC.
fn time(seconds: i64, nanos: i64, micro: bool) -> Result<String, String> {
    let at = time::OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| format!("timestamp {seconds} out of range"))?;
    if !(0..=9999).contains(&at.year()) {
        return Err(format!("timestamp {seconds} outside the years 0 to 9999"));
    }
    let seconds = crate::object::rfc3339(at);
    if !micro {
        return Ok(seconds);
    }
    let micros = nanos.clamp(0, 999_999_999) / 1000;
    Ok(format!("{}.{micros:06}Z", seconds.trim_end_matches('Z')))
}

/// A duration in nanoseconds as Go's `time.Duration.String` writes it: `1h0m0s`, `1.5s`,
/// `100ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    /// `value / 10^digits` with the fraction's trailing zeros (and an empty fraction's point)
    /// left out.
    fn decimal(value: u64, digits: u32) -> String {
        let scale = 10u64.pow(digits);
        let (whole, frac) = (value / scale, value % scale);
        if frac == 0 {
            return whole.to_string();
        }
        let frac = format!("{frac:0width$}", width = digits as usize);
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    const SECOND: u64 = 1_000_000_000;
    let body = if u == 0 {
        return "0s".into();
    } else if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", decimal(u, 3))
    } else if u < SECOND {
        format!("{}ms", decimal(u, 6))
    } else {
        let (whole, frac) = (u / SECOND, u % SECOND);
        let seconds = decimal((whole % 60) * SECOND + frac, 9);
        let minutes = whole / 60;
        match (minutes / 60, minutes % 60) {
            (0, 0) => format!("{seconds}s"),
            (0, m) => format!("{m}m{seconds}s"),
            (h, m) => format!("{h}h{m}m{seconds}s"),
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests;
