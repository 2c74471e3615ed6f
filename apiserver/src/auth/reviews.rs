//! The authentication.k8s.io and authorization.k8s.io review resources (TokenReview, SelfSubjectReview, SubjectAccessReview and its self and local forms, SelfSubjectRulesReview), TokenRequest (`serviceaccounts/<name>/token`) and the resources that register them.

use http::StatusCode;
use serde_json::{Value, json};

use super::token::{BoundObject, Claims};
use super::{Attributes, Auth, Decision, UserInfo};
use crate::registry::{BASE, NameRule, Resource};
use crate::request::ResourceRequest;
use crate::rest::Rest;
use crate::status::{ApiError, ApiResult, FieldCause};

const AUTHN: &str = "authentication.k8s.io";
const AUTHZ: &str = "authorization.k8s.io";

/// The create-only review resources.
pub static RESOURCES: &[Resource] = &[
    Resource {
        group: AUTHN,
        kind: "SelfSubjectReview",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        namespaced: false,
        name_rule: NameRule::PathSegment,
        schema: |g| g.subschema_for::<k8s_openapi::api::authentication::v1::SelfSubjectReview>(),
        ..BASE
    },
    Resource {
        group: AUTHN,
        kind: "TokenReview",
        plural: "tokenreviews",
        singular: "tokenreview",
        namespaced: false,
        name_rule: NameRule::PathSegment,
        schema: |g| g.subschema_for::<k8s_openapi::api::authentication::v1::TokenReview>(),
        ..BASE
    },
    Resource {
        group: AUTHZ,
        kind: "LocalSubjectAccessReview",
        plural: "localsubjectaccessreviews",
        singular: "localsubjectaccessreview",
        namespaced: true,
        name_rule: NameRule::PathSegment,
        schema: |g| {
            g.subschema_for::<k8s_openapi::api::authorization::v1::LocalSubjectAccessReview>()
        },
        ..BASE
    },
    Resource {
        group: AUTHZ,
        kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        namespaced: false,
        name_rule: NameRule::PathSegment,
        schema: |g| {
            g.subschema_for::<k8s_openapi::api::authorization::v1::SelfSubjectAccessReview>()
        },
        ..BASE
    },
    Resource {
        group: AUTHZ,
        kind: "SelfSubjectRulesReview",
        plural: "selfsubjectrulesreviews",
        singular: "selfsubjectrulesreview",
        namespaced: false,
        name_rule: NameRule::PathSegment,
        schema: |g| {
            g.subschema_for::<k8s_openapi::api::authorization::v1::SelfSubjectRulesReview>()
        },
        ..BASE
    },
    Resource {
        group: AUTHZ,
        kind: "SubjectAccessReview",
        plural: "subjectaccessreviews",
        singular: "subjectaccessreview",
        namespaced: false,
        name_rule: NameRule::PathSegment,
        schema: |g| g.subschema_for::<k8s_openapi::api::authorization::v1::SubjectAccessReview>(),
        ..BASE
    },
];

/// Whether `req` is one this module serves.
pub fn serves(req: &ResourceRequest) -> bool {
    matches!(req.resource.group, AUTHN | AUTHZ)
        || (req.resource.group.is_empty()
            && req.resource.plural == "serviceaccounts"
            && req.subresource.as_deref() == Some("token"))
}

/// Decode a request body (JSON, YAML or protobuf) into JSON.
fn decode(body: &[u8], media: &str) -> ApiResult<Value> {
    match media {
        crate::protobuf::MEDIA_TYPE => crate::protobuf::decode_object(body),
        "application/yaml" => serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}"))),
        _ => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The attributes a review's spec asks about, for `user`.
/// `resourceAttributes.fieldSelector` as a selector string: its `rawSelector`, or its
/// single-valued `In` requirements as `key=value` terms (what the Node authorizer reads).
fn review_field_selector(ra: &Value) -> String {
    let Some(selector) = ra.get("fieldSelector").filter(|v| v.is_object()) else {
        return String::new();
    };
    if let Some(raw) = selector.get("rawSelector").and_then(Value::as_str) {
        return raw.to_string();
    }
    selector
        .get("requirements")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| s(r, "/operator") == "In")
        .filter_map(|r| match r.get("values").and_then(Value::as_array) {
            Some(values) if values.len() == 1 => Some(format!(
                "{}={}",
                s(r, "/key"),
                values[0].as_str().unwrap_or("")
            )),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn review_attributes(spec: &Value, user: UserInfo) -> ApiResult<Attributes> {
    if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes {
            user,
            verb: s(ra, "/verb").into(),
            namespace: s(ra, "/namespace").into(),
            api_group: s(ra, "/group").into(),
            api_version: s(ra, "/version").into(),
            resource: s(ra, "/resource").into(),
            subresource: s(ra, "/subresource").into(),
            name: s(ra, "/name").into(),
            resource_request: true,
            path: String::new(),
            field_selector: review_field_selector(ra),
        });
    }
    if let Some(na) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes {
            user,
            verb: s(na, "/verb").into(),
            path: s(na, "/path").into(),
            ..Attributes::default()
        });
    }
    Err(ApiError::invalid(
        AUTHZ,
        "SelfSubjectAccessReview",
        "",
        vec![FieldCause::required("spec.resourceAttributes")],
    )
    .with_message(
        "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
    ))
}

fn access_status(decision: Decision) -> Value {
    match decision {
        Decision::Allow(reason) if reason.is_empty() => json!({"allowed": true}),
        Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
        Decision::Deny(reason) if reason.is_empty() => json!({"allowed": false}),
        Decision::Deny(reason) => json!({"allowed": false, "reason": reason}),
    }
}

fn reply(kind: &str, group: &str, object: &Value, status: Value) -> (StatusCode, Value) {
    let mut out = json!({
        "kind": kind,
        "apiVersion": format!("{group}/v1"),
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "spec": object.get("spec").cloned().unwrap_or_else(|| json!({})),
        "status": status,
    });
    if kind == "SelfSubjectReview" {
        out.as_object_mut().map(|o| o.remove("spec"));
    }
    (StatusCode::CREATED, out)
}

/// Serve a review or TokenRequest for `user`.
pub async fn handle(
    auth: &Auth,
    rest: &Rest,
    user: &UserInfo,
    req: &ResourceRequest,
    body: &[u8],
    media: &str,
) -> ApiResult<(StatusCode, Value)> {
    if req.verb != crate::request::Verb::Create || (req.name.is_some() && req.subresource.is_none())
    {
        return Err(ApiError::method_not_allowed());
    }
    let object = decode(body, media)?;
    let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    match (req.resource.group, req.resource.plural) {
        (AUTHN, "selfsubjectreviews") => Ok(reply(
            "SelfSubjectReview",
            AUTHN,
            &object,
            json!({"userInfo": user.to_json()}),
        )),
        (AUTHN, "tokenreviews") => {
            let token = s(&spec, "/token");
            let requested = strings(&spec, "/audiences");
            let audiences = if requested.is_empty() {
                auth.audiences.clone()
            } else {
                requested
            };
            let status = match auth.authenticate_token(token, &audiences, rest).await {
                Ok((user, accepted)) => {
                    json!({"authenticated": true, "user": user.to_json(), "audiences": accepted})
                }
                Err(error) => json!({"user": {}, "error": error}),
            };
            Ok(reply("TokenReview", AUTHN, &object, status))
        }
        (AUTHZ, "selfsubjectaccessreviews") => {
            let attrs = review_attributes(&spec, user.clone())?;
            let decision = auth.authorize(&attrs, rest).await;
            Ok(reply(
                "SelfSubjectAccessReview",
                AUTHZ,
                &object,
                access_status(decision),
            ))
        }
        (AUTHZ, kind @ ("subjectaccessreviews" | "localsubjectaccessreviews")) => {
            let subject = UserInfo {
                name: s(&spec, "/user").into(),
                uid: s(&spec, "/uid").into(),
                groups: strings(&spec, "/groups"),
                extra: spec
                    .get("extra")
                    .and_then(|e| serde_json::from_value(e.clone()).ok())
                    .unwrap_or_default(),
            };
            if subject.name.is_empty() && subject.groups.is_empty() {
                return Err(ApiError::invalid(
                    AUTHZ,
                    "SubjectAccessReview",
                    "",
                    vec![FieldCause::invalid(
                        "spec.user",
                        "",
                        "at least one of user or group must be specified",
                    )],
                ));
            }
            let attrs = review_attributes(&spec, subject)?;
            let local = kind == "localsubjectaccessreviews";
            if local && attrs.namespace != req.namespace.clone().unwrap_or_default() {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {}",
                    req.namespace.clone().unwrap_or_default()
                )));
            }
            let decision = auth.authorize(&attrs, rest).await;
            let kind = if local {
                "LocalSubjectAccessReview"
            } else {
                "SubjectAccessReview"
            };
            Ok(reply(kind, AUTHZ, &object, access_status(decision)))
        }
        (AUTHZ, "selfsubjectrulesreviews") => {
            let namespace = s(&spec, "/namespace");
            let rules = auth.rbac.index().rules_for(user, namespace);
            let resource_rules: Vec<Value> = rules
                .iter()
                .filter(|r| r.non_resource_urls.is_empty())
                .map(|r| {
                    let mut v = r.to_json();
                    if v.get("resourceNames").is_none() {
                        v.as_object_mut().map(|o| o.remove("resourceNames"));
                    }
                    v
                })
                .collect();
            let non_resource_rules: Vec<Value> = rules
                .iter()
                .filter(|r| !r.non_resource_urls.is_empty())
                .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
                .collect();
            Ok(reply(
                "SelfSubjectRulesReview",
                AUTHZ,
                &object,
                json!({
                    "resourceRules": resource_rules,
                    "nonResourceRules": non_resource_rules,
                    "incomplete": false,
                }),
            ))
        }
        ("", "serviceaccounts") => token_request(auth, rest, req, &object).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The stored object at `key`, read from the store (a consistent read).
async fn stored(rest: &Rest, key: &str) -> ApiResult<Option<Value>> {
    let (_, kv) = rest
        .store
        .get(key.as_bytes(), None)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(kv.and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

/// Minimum and default token lifetimes (upstream's TokenRequest validation and defaulting).
const MIN_EXPIRATION: i64 = 600;
const DEFAULT_EXPIRATION: i64 = 3600;

async fn token_request(
    auth: &Auth,
    rest: &Rest,
    req: &ResourceRequest,
    object: &Value,
) -> ApiResult<(StatusCode, Value)> {
    let namespace = req.namespace.clone().unwrap_or_default();
    let name = req.name.clone().unwrap_or_default();
    let sa = stored(
        rest,
        &format!("/registry/core/serviceaccounts/{namespace}/{name}"),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("", "serviceaccounts", &name))?;
    let mut spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = match spec.get("expirationSeconds").and_then(Value::as_i64) {
        Some(e) => e,
        None => DEFAULT_EXPIRATION,
    };
    let invalid = |detail: &str| {
        ApiError::invalid(
            AUTHN,
            "TokenRequest",
            &name,
            vec![FieldCause::invalid_raw(
                "spec.expirationSeconds",
                &expiration.to_string(),
                detail,
            )],
        )
    };
    if expiration < MIN_EXPIRATION {
        return Err(invalid("may not specify a duration less than 10 minutes"));
    }
    if expiration > 1 << 32 {
        return Err(invalid(
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let mut audiences = strings(&spec, "/audiences");
    if audiences.is_empty() {
        audiences = auth.audiences.clone();
    }
    let bound = match spec.get("boundObjectRef").filter(|b| b.is_object()) {
        None => None,
        Some(b) => {
            let kind = s(b, "/kind").to_string();
            let plural = match kind.as_str() {
                "Pod" => "pods",
                "Secret" => "secrets",
                other => {
                    return Err(ApiError::invalid(
                        AUTHN,
                        "TokenRequest",
                        &name,
                        vec![FieldCause::not_supported(
                            "spec.boundObjectRef.kind",
                            other,
                            &["Pod", "Secret"],
                        )],
                    ));
                }
            };
            let bound_name = s(b, "/name").to_string();
            let target = stored(
                rest,
                &format!("/registry/core/{plural}/{namespace}/{bound_name}"),
            )
            .await?
            .ok_or_else(|| ApiError::not_found("", plural, &bound_name))?;
            let uid = s(&target, "/metadata/uid").to_string();
            let wanted = s(b, "/uid");
            if !wanted.is_empty() && wanted != uid {
                return Err(ApiError::conflict_message(
                    "",
                    plural,
                    &bound_name,
                    &format!(
                        "the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"
                    ),
                ));
            }
            Some(BoundObject {
                kind,
                name: bound_name,
                uid,
            })
        }
    };
    let now = super::unix_now();
    let claims = Claims {
        namespace: namespace.clone(),
        service_account: name.clone(),
        service_account_uid: s(&sa, "/metadata/uid").to_string(),
        audiences: audiences.clone(),
        issued_at: now,
        not_before: now,
        expires: now + expiration,
        id: uuid::Uuid::new_v4().to_string(),
        bound: bound.clone(),
    };
    let token = auth
        .signer
        .sign(&claims)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    spec["audiences"] = json!(audiences);
    spec["expirationSeconds"] = json!(expiration);
    if let Some(b) = &bound {
        spec["boundObjectRef"] =
            json!({"kind": b.kind, "apiVersion": "v1", "name": b.name, "uid": b.uid});
    }
    let expires_at = time::OffsetDateTime::from_unix_timestamp(claims.expires)
        .map(crate::object::rfc3339)
        .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": crate::object::now_rfc3339(),
            },
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": expires_at},
        }),
    ))
}
