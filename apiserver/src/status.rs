//! Kubernetes `Status` errors: what every failed request answers, with upstream's reasons, codes and messages.

use http::StatusCode;
use serde_json::{Value, json};

/// A failed API request, rendered as a `meta/v1` `Status` object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    /// `details` (name, group, kind, causes), when upstream sends them.
    pub details: Option<Value>,
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Replace the message (keeping reason, code and details).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// `details.name`, when the error names an object.
    pub fn details_name(&self) -> Option<&str> {
        self.details.as_ref()?.get("name")?.as_str()
    }

    /// 404 `configmaps "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .with_details(name_details(group, resource, name))
    }

    /// 404 for a path that names no resource.
    pub fn path_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    /// 409 `configmaps "x" already exists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .with_details(name_details(group, resource, name))
    }

    /// 409 on a stale resourceVersion, with upstream's wording.
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(group, resource)
            ),
        )
        .with_details(name_details(group, resource, name))
    }

    /// 409 with a specific reason: `Operation cannot be fulfilled on <resource> "x": <detail>`.
    pub fn conflict_message(group: &str, resource: &str, name: &str, detail: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {detail}",
                qualified(group, resource)
            ),
        )
        .with_details(name_details(group, resource, name))
    }

    /// 403 `<resource> "x" is forbidden: <detail>`, optionally with one cause.
    pub fn forbidden(
        group: &str,
        resource: &str,
        name: &str,
        detail: &str,
        cause: Option<Value>,
    ) -> Self {
        let mut details = name_details(group, resource, name);
        if let Some(cause) = cause {
            details["causes"] = json!([cause]);
        }
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: {detail}",
                qualified(group, resource)
            ),
        )
        .with_details(details)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 422 with one cause per offending field.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<FieldCause>) -> Self {
        let summary = causes
            .iter()
            .map(FieldCause::summary)
            .collect::<Vec<_>>()
            .join(", ");
        // `Deployment.apps "x"`, `ConfigMap "x"`: the kind qualified by its group.
        let what = qualified(group, kind);
        let message = if causes.len() == 1 {
            format!("{what} \"{name}\" is invalid: {summary}")
        } else {
            format!("{what} \"{name}\" is invalid: [{summary}]")
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        let mut details = json!({"name": name, "kind": kind, "causes": causes});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message).with_details(details)
    }

    /// 422 for a request that decoded but cannot be applied (e.g. a failed JSON patch test).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"
            ),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// 410 when a resourceVersion or continue token has been compacted away.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", message)
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        });
        if !self.reason.is_empty() {
            status["reason"] = json!(self.reason);
        }
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status["code"] = json!(self.code.as_u16());
        status
    }
}

/// One field-level validation failure.
#[derive(Debug, Clone)]
pub struct FieldCause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueForbidden`, ...
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl FieldCause {
    pub fn required(field: &str) -> Self {
        FieldCause {
            reason: "FieldValueRequired",
            field: field.to_string(),
            message: "Required value".to_string(),
        }
    }

    pub fn forbidden(field: &str, detail: &str) -> Self {
        FieldCause {
            reason: "FieldValueForbidden",
            field: field.to_string(),
            message: format!("Forbidden: {detail}"),
        }
    }

    pub fn invalid(field: &str, value: &str, detail: &str) -> Self {
        FieldCause {
            reason: "FieldValueInvalid",
            field: field.to_string(),
            message: format!("Invalid value: \"{value}\": {detail}"),
        }
    }

    /// An invalid value rendered as Go's `%#v` would (numbers bare, strings quoted, slices as
    /// `[]string{"a"}`): `rendered` is used as is.
    pub fn invalid_raw(field: &str, rendered: &str, detail: &str) -> Self {
        FieldCause {
            reason: "FieldValueInvalid",
            field: field.to_string(),
            message: format!("Invalid value: {rendered}: {detail}"),
        }
    }

    /// A value that must be unique in its list (`rendered` as Go's `%#v`).
    pub fn duplicate(field: &str, rendered: &str) -> Self {
        FieldCause {
            reason: "FieldValueDuplicate",
            field: field.to_string(),
            message: format!("Duplicate value: {rendered}"),
        }
    }

    /// A value outside an enumeration; `supported` in upstream's order.
    pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        FieldCause {
            reason: "FieldValueNotSupported",
            field: field.to_string(),
            message: format!("Unsupported value: \"{value}\": supported values: {list}"),
        }
    }

    fn summary(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

fn name_details(group: &str, resource: &str, name: &str) -> Value {
    let mut details = json!({"name": name});
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    details["kind"] = json!(resource);
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_upstream() {
        let status = ApiError::not_found("", "configmaps", "x").to_status();
        assert_eq!(
            status.to_string(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"x\" not found","reason":"NotFound","details":{"name":"x","kind":"configmaps"},"code":404}"#
        );
        let status = ApiError::already_exists("apps", "deployments", "web").to_status();
        assert_eq!(status["message"], "deployments.apps \"web\" already exists");
        assert_eq!(status["details"]["group"], "apps");
    }

    #[test]
    fn invalid_qualifies_the_kind_with_its_group() {
        let err = ApiError::invalid(
            "apps",
            "Deployment",
            "web",
            vec![FieldCause::required("spec.selector")],
        );
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: spec.selector: Required value"
        );
        assert_eq!(err.to_status()["details"]["kind"], "Deployment");
    }

    #[test]
    fn invalid_lists_each_cause() {
        let err = ApiError::invalid(
            "",
            "ConfigMap",
            "Bad_Name",
            vec![FieldCause::invalid(
                "metadata.name",
                "Bad_Name",
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            )],
        );
        assert_eq!(err.code, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(err.message.starts_with(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ));
    }
}
