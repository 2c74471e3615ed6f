//! Turning an HTTP request line into a typed API request: which endpoint, resource, namespace, name, verb and options.

use std::collections::HashMap;

use http::Method;
use percent_encoding::percent_decode_str;

use crate::registry::{self, Resource};
use crate::status::{ApiError, ApiResult};

/// What a request is for.
#[derive(Debug)]
pub enum Endpoint {
    Version,
    /// `/openapi/v2`: the Swagger 2.0 document (JSON or protobuf).
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiIndex,
    /// `/openapi/v3/<group-version path>`.
    OpenApiDocument(String),
    /// `/healthz`, `/livez`, `/readyz`.
    Health(&'static str),
    /// `/metrics`: Prometheus metrics.
    Metrics,
    /// `/api`: the legacy core versions, or aggregated discovery.
    CoreDiscovery,
    /// `/apis`: the group list, or aggregated discovery.
    GroupsDiscovery,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    Resources {
        group: String,
        version: String,
    },
    Resource(ResourceRequest),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

#[derive(Debug, Clone)]
pub struct ResourceRequest {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    pub verb: Verb,
}

/// Decoded query parameters (the last value wins for repeated keys, as upstream's options do).
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let mut map = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            map.insert(decode(k), decode(v));
        }
        Query(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Whether the key is present at all (`?verbose`).
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.0.get(key).map(String::as_str), Some("true" | "1"))
    }
}

/// Route a method and path.
pub fn route(method: &Method, path: &str, query: &Query) -> ApiResult<Endpoint> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        ["version"] => Ok(Endpoint::Version),
        ["openapi", "v2"] => Ok(Endpoint::OpenApiV2),
        ["openapi", "v3"] => Ok(Endpoint::OpenApiIndex),
        ["openapi", "v3", rest @ ..] => Ok(Endpoint::OpenApiDocument(rest.join("/"))),
        ["healthz"] => Ok(Endpoint::Health("healthz")),
        ["livez"] => Ok(Endpoint::Health("livez")),
        ["readyz"] => Ok(Endpoint::Health("readyz")),
        ["metrics"] => Ok(Endpoint::Metrics),
        ["api"] => Ok(Endpoint::CoreDiscovery),
        ["apis"] => Ok(Endpoint::GroupsDiscovery),
        ["apis", group] => Ok(Endpoint::Group(group.to_string())),
        ["api", version] => Ok(Endpoint::Resources {
            group: String::new(),
            version: version.to_string(),
        }),
        ["apis", group, version] => Ok(Endpoint::Resources {
            group: group.to_string(),
            version: version.to_string(),
        }),
        ["api", version, rest @ ..] => resource(method, "", version, rest, query),
        ["apis", group, version, rest @ ..] => resource(method, group, version, rest, query),
        _ => Err(ApiError::path_not_found()),
    }
}

fn resource(
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &Query,
) -> ApiResult<Endpoint> {
    let find =
        |plural: &str| registry::find(group, version, plural).ok_or_else(ApiError::path_not_found);
    // `namespaces/<ns>/<plural>/...` names a namespaced resource; `namespaces/<name>/<sub>` is a
    // subresource of a namespace.
    let (resource, namespace, name, subresource) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if registry::find(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            let resource = find(plural)?;
            match tail {
                [] => (resource, Some(*ns), None, None),
                [name] => (resource, Some(*ns), Some(*name), None),
                [name, sub] => (resource, Some(*ns), Some(*name), Some(*sub)),
                _ => return Err(ApiError::path_not_found()),
            }
        }
        [plural] => (find(plural)?, None, None, None),
        [plural, name] => (find(plural)?, None, Some(*name), None),
        [plural, name, sub] => (find(plural)?, None, Some(*name), Some(*sub)),
        _ => return Err(ApiError::path_not_found()),
    };
    if let Some(sub) = subresource
        && !resource.subresources.contains(&sub)
    {
        return Err(ApiError::path_not_found());
    }
    if resource.namespaced != namespace.is_some() && name.is_some() && resource.namespaced {
        // A namespaced object addressed without its namespace.
        return Err(ApiError::path_not_found());
    }
    let verb = match (method, name.is_some()) {
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) if query.flag("watch") => Verb::Watch,
        (&Method::GET, false) => Verb::List,
        (&Method::POST, false) => Verb::Create,
        // `pods/<name>/binding` and other create-only subresources.
        (&Method::POST, true) if subresource.is_some() => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        _ => return Err(ApiError::method_not_allowed()),
    };
    Ok(Endpoint::Resource(ResourceRequest {
        resource,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        subresource: subresource.map(str::to_string),
        verb,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: Method, path: &str, query: &str) -> String {
        match route(&method, path, &Query::parse(Some(query))) {
            Ok(Endpoint::Resource(r)) => format!(
                "{} {:?} {:?} {:?} {:?}",
                r.resource.plural, r.namespace, r.name, r.subresource, r.verb
            ),
            Ok(other) => format!("{other:?}"),
            Err(e) => format!("{} {}", e.code.as_u16(), e.message),
        }
    }

    #[test]
    fn routes() {
        assert_eq!(
            r(Method::GET, "/api/v1/namespaces", ""),
            "namespaces None None None List"
        );
        assert_eq!(
            r(Method::GET, "/api/v1/namespaces/default", ""),
            "namespaces None Some(\"default\") None Get"
        );
        assert_eq!(
            r(Method::PUT, "/api/v1/namespaces/x/finalize", ""),
            "namespaces None Some(\"x\") Some(\"finalize\") Update"
        );
        assert_eq!(
            r(
                Method::GET,
                "/api/v1/namespaces/default/configmaps",
                "watch=true"
            ),
            "configmaps Some(\"default\") None None Watch"
        );
        assert_eq!(
            r(Method::GET, "/api/v1/configmaps", ""),
            "configmaps None None None List"
        );
        assert_eq!(
            r(Method::DELETE, "/api/v1/namespaces/a/configmaps", ""),
            "configmaps Some(\"a\") None None DeleteCollection"
        );
        assert_eq!(
            r(
                Method::GET,
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                ""
            ),
            "leases Some(\"kube-node-lease\") Some(\"n1\") None Get"
        );
        assert_eq!(
            r(Method::GET, "/api/v1/widgets", ""),
            "404 the server could not find the requested resource"
        );
        assert_eq!(
            r(Method::GET, "/api/v1/namespaces/a/configmaps/x/status", ""),
            "404 the server could not find the requested resource"
        );
        assert_eq!(
            r(Method::POST, "/api/v1/namespaces/a/configmaps/x", ""),
            "405 the server does not allow this method on the requested resource"
        );
        assert_eq!(r(Method::GET, "/version", ""), "Version");
    }

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some("fieldSelector=metadata.name%3Dweb&watch=1&limit=500"));
        assert_eq!(q.get("fieldSelector"), Some("metadata.name=web"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("limit"), Some("500"));
        assert_eq!(q.get("continue"), None);
    }
}
