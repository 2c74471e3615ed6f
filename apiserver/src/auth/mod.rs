//! The request security chain: who a request is from ([`UserInfo`], established by authentication in upstream's order: client certificate, static tokens, service-account tokens, anonymous; then impersonation) and whether it may do what it asks (the Node authorizer, then RBAC).

pub mod join;
pub mod node;
pub mod policy;
pub mod rbac;
pub mod reviews;
pub mod token;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use http::HeaderMap;
use serde_json::json;

use crate::cache::{Freshness, WatchCache};
use crate::rest::Rest;
use crate::status::ApiError;
use crate::tls::Identity;

/// The authenticated user of a request (upstream's `user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

pub const AUTHENTICATED: &str = "system:authenticated";
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
pub const ANONYMOUS: &str = "system:anonymous";
pub const MASTERS: &str = "system:masters";

impl UserInfo {
    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The server's own identity, for writes k1s makes itself (bootstrap objects).
    #[allow(dead_code, reason = "admission passes it for the server's own writes")]
    pub fn system() -> UserInfo {
        UserInfo {
            name: "system:apiserver".into(),
            uid: String::new(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
            extra: BTreeMap::new(),
        }
    }

    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: ANONYMOUS.into(),
            groups: vec![UNAUTHENTICATED.into()],
            ..UserInfo::default()
        }
    }

    /// Add the groups every authenticated user (and every service account) gets.
    fn with_implied_groups(mut self) -> UserInfo {
        if let Some(rest) = self.name.strip_prefix("system:serviceaccount:")
            && let Some((ns, _)) = rest.split_once(':')
        {
            for g in [
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ] {
                if !self.in_group(&g) {
                    self.groups.push(g);
                }
            }
        }
        let implied = if self.name == ANONYMOUS {
            UNAUTHENTICATED
        } else {
            AUTHENTICATED
        };
        if !self.in_group(implied) {
            self.groups.push(implied.into());
        }
        self
    }

    /// The `userInfo` object of reviews.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            v["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            v["extra"] = json!(self.extra);
        }
        v
    }
}

/// What the TLS layer saw of a client certificate.
#[derive(Clone, Debug)]
pub enum ClientCert {
    /// None was sent.
    None,
    /// One was sent but does not verify against the cluster CA (or names no user).
    Invalid,
    Valid(Identity),
}

/// What a request asks to do (upstream's `authorizer.Attributes`).
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub resource_request: bool,
    /// The request path (non-resource requests).
    pub path: String,
    /// The `fieldSelector` of a list or watch, as sent (the Node authorizer reads it).
    pub field_selector: String,
}

impl Attributes {
    /// Upstream's forbidden message for these attributes, without the resource prefix.
    fn forbidden_message(&self) -> String {
        let user = &self.user.name;
        if !self.resource_request {
            return format!("User {user:?} cannot {} path {:?}", self.verb, self.path);
        }
        let mut resource = self.resource.clone();
        if !self.subresource.is_empty() {
            resource = format!("{resource}/{}", self.subresource);
        }
        if self.namespace.is_empty() {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                self.verb, self.api_group
            )
        } else {
            format!(
                "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                self.verb, self.api_group, self.namespace
            )
        }
    }

    /// The 403 upstream answers for a denied request, with the authorizer's `reason`.
    pub fn forbidden(&self, reason: &str) -> ApiError {
        let mut message = self.forbidden_message();
        if !reason.is_empty() {
            message = format!("{message}: {reason}");
        }
        if !self.resource_request || self.resource.is_empty() {
            return ApiError::forbidden("", "x", "", "", None)
                .with_message(format!("forbidden: {message}"))
                .with_details(json!({}));
        }
        let qualified = if self.api_group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.api_group)
        };
        let head = if self.name.is_empty() {
            format!("{qualified} is forbidden")
        } else {
            format!("{qualified} {:?} is forbidden", self.name)
        };
        let mut details = json!({"kind": self.resource});
        if !self.name.is_empty() {
            details["name"] = json!(self.name);
        }
        if !self.api_group.is_empty() {
            details["group"] = json!(self.api_group);
        }
        ApiError::forbidden("", "x", "", "", None)
            .with_message(format!("{head}: {message}"))
            .with_details(details)
    }
}

/// The attributes of an HTTP request, as upstream's `RequestInfoFactory` derives them from the
/// method and path (before routing, so a path naming nothing is still authorized first).
pub fn request_attributes(
    method: &http::Method,
    path: &str,
    query: &crate::request::Query,
    user: &UserInfo,
) -> Attributes {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let mut attrs = Attributes {
        user: user.clone(),
        verb: method.as_str().to_lowercase(),
        path: path.to_string(),
        ..Attributes::default()
    };
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return attrs;
    }
    let mut rest = &parts[1..];
    if parts[0] == "apis" {
        if rest.len() < 3 {
            return attrs;
        }
        attrs.api_group = rest[0].to_string();
        rest = &rest[1..];
    }
    attrs.resource_request = true;
    attrs.api_version = rest[0].to_string();
    rest = &rest[1..];
    attrs.verb = match *method {
        http::Method::POST => "create",
        http::Method::GET | http::Method::HEAD => "get",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "",
    }
    .to_string();
    if rest.first() == Some(&"watch") {
        attrs.verb = "watch".into();
        rest = &rest[1..];
    }
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        attrs.namespace = rest[1].to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    if let Some(resource) = rest.first() {
        attrs.resource = resource.to_string();
    }
    if let Some(name) = rest.get(1) {
        attrs.name = name.to_string();
    }
    if let Some(sub) = rest.get(2) {
        attrs.subresource = sub.to_string();
    }
    if attrs.name.is_empty() && attrs.verb == "get" {
        attrs.verb = if query.flag("watch") { "watch" } else { "list" }.into();
        attrs.field_selector = query.get("fieldSelector").unwrap_or("").to_string();
        if let Some(name) = query
            .get("fieldSelector")
            .and_then(|f| f.strip_prefix("metadata.name="))
            && !name.contains([',', '/', '%'])
            && !name.is_empty()
            && name != "."
            && name != ".."
        {
            attrs.name = name.to_string();
        }
    }
    if attrs.name.is_empty() && attrs.verb == "delete" {
        attrs.verb = "deletecollection".into();
    }
    attrs
}

/// An authorization decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(String),
    /// Denied (no authorizer allowed), with the reason to add to the message.
    Deny(String),
}

/// Authentication and authorization state shared by every request.
pub struct Auth {
    /// `--token-auth-file` tokens.
    pub static_tokens: HashMap<String, UserInfo>,
    pub signer: token::Signer,
    pub rbac: rbac::Cache,
    /// The audiences the API itself accepts in service-account tokens.
    pub audiences: Vec<String>,
    /// Whether authorization is enforced (off: every authenticated request is allowed).
    pub authorize: bool,
}

/// Why a token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the token file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: a token line needs at least a token, a user name and a uid")]
    Line { path: String, line: usize },
    #[error(transparent)]
    Key(#[from] token::Error),
    #[error("cannot write the join token {path}")]
    JoinToken {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Upstream's static token CSV: `token,user,uid,"group1,group2"` per line (`#` comments).
pub fn read_token_file(path: &Path) -> Result<HashMap<String, UserInfo>, Error> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: shown.clone(),
        source,
    })?;
    parse_tokens(&text).map_err(|line| Error::Line { path: shown, line })
}

fn parse_tokens(text: &str) -> Result<HashMap<String, UserInfo>, usize> {
    let mut tokens = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = csv_fields(line);
        if fields.len() < 3 || fields[0].is_empty() {
            return Err(i + 1);
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        tokens.insert(
            fields[0].clone(),
            UserInfo {
                name: fields[1].clone(),
                uid: fields[2].clone(),
                groups,
                extra: BTreeMap::new(),
            },
        );
    }
    Ok(tokens)
}

/// Split one CSV line (double quotes group, `""` is a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("one field").push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The uid of the object stored at `key` in the resource cached under `prefix`, if it exists
/// (from the watch cache, without a store read).
pub async fn cached_uid(rest: &Rest, prefix: &str, key: &str) -> Option<String> {
    let uid = |v: &serde_json::Value| {
        v.pointer("/metadata/uid")
            .and_then(|u| u.as_str())
            .unwrap_or("")
            .to_string()
    };
    let snapshot = rest
        .cache
        .list(prefix, key, Freshness::Any)
        .await
        .ok()
        .flatten();
    if let Some(found) = snapshot
        .as_ref()
        .and_then(|s| s.items.iter().find(|i| i.key.as_ref() == key.as_bytes()))
    {
        return Some(uid(found.object()));
    }
    // Not (yet) in the cache: a consistent read settles it (rare: only unknown objects).
    let (_, kv) = rest.store.get(key.as_bytes(), None).await.ok()?;
    let value: serde_json::Value = serde_json::from_slice(&kv?.value).ok()?;
    Some(uid(&value))
}

impl Auth {
    /// Set up: the signing key under `tls_dir`, the static tokens, the RBAC cache.
    pub fn new(
        tls_dir: &Path,
        token_file: Option<&Path>,
        rbac: rbac::Cache,
        authorize: bool,
    ) -> Result<Auth, Error> {
        Ok(Auth {
            static_tokens: match token_file {
                Some(path) => read_token_file(path)?,
                None => HashMap::new(),
            },
            signer: token::Signer::load_or_create(tls_dir)?,
            rbac,
            audiences: vec![token::ISSUER.to_string()],
            authorize,
        })
    }

    /// Authenticate a request: its client certificate wins, then a bearer token, else anonymous.
    pub async fn authenticate(
        &self,
        cert: &ClientCert,
        headers: &HeaderMap,
        rest: &Rest,
    ) -> Result<UserInfo, ApiError> {
        if let ClientCert::Valid(identity) = cert {
            return Ok(UserInfo {
                name: identity.user.clone(),
                groups: identity.groups.clone(),
                ..UserInfo::default()
            }
            .with_implied_groups());
        }
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let Some(token) = bearer else {
            return match cert {
                ClientCert::Invalid => Err(ApiError::unauthorized()),
                _ => Ok(UserInfo::anonymous()),
            };
        };
        self.authenticate_token(token, &self.audiences, rest)
            .await
            .map(|(user, _)| user)
            .map_err(|_| ApiError::unauthorized())
    }

    /// A bearer token's user, for the API or (TokenReview) for `audiences`, with the audiences
    /// it was accepted for.
    pub async fn authenticate_token(
        &self,
        token: &str,
        audiences: &[String],
        rest: &Rest,
    ) -> Result<(UserInfo, Vec<String>), String> {
        if let Some(user) = self.static_tokens.get(token) {
            // Static tokens carry no audience: they are good for the API's own (upstream's
            // audience-agnostic authenticators).
            let accepted: Vec<String> = audiences
                .iter()
                .filter(|a| self.audiences.contains(a))
                .cloned()
                .collect();
            if accepted.is_empty() {
                return Err("token audiences is invalid for the target audiences".into());
            }
            return Ok((user.clone().with_implied_groups(), accepted));
        }
        if !token::Signer::issued(token) {
            return Err("invalid bearer token".into());
        }
        let claims = self
            .signer
            .verify(token, audiences, unix_now())
            .map_err(|e| format!("[invalid bearer token, {e}]"))?;
        // The service account, and the object the token is bound to, must still exist with
        // the uids the token names.
        let sa_key = format!(
            "/registry/core/serviceaccounts/{}/{}",
            claims.namespace, claims.service_account
        );
        let sa_uid = cached_uid(rest, "/registry/core/serviceaccounts/", &sa_key).await;
        match sa_uid {
            Some(uid) if uid == claims.service_account_uid => {}
            Some(_) => return Err("service account UID does not match claim".into()),
            None => {
                return Err(format!(
                    "service account {}/{} has been deleted",
                    claims.namespace, claims.service_account
                ));
            }
        }
        let mut extra = BTreeMap::new();
        if let Some(bound) = &claims.bound {
            let plural = if bound.kind == "Pod" {
                "pods"
            } else {
                "secrets"
            };
            let prefix = format!("/registry/core/{plural}/");
            let key = format!("{prefix}{}/{}", claims.namespace, bound.name);
            match cached_uid(rest, &prefix, &key).await {
                Some(uid) if uid == bound.uid => {}
                _ => {
                    return Err(format!(
                        "{} {}/{} has been deleted or replaced",
                        bound.kind.to_lowercase(),
                        claims.namespace,
                        bound.name
                    ));
                }
            }
            if bound.kind == "Pod" {
                extra.insert(
                    "authentication.kubernetes.io/pod-name".to_string(),
                    vec![bound.name.clone()],
                );
                extra.insert(
                    "authentication.kubernetes.io/pod-uid".to_string(),
                    vec![bound.uid.clone()],
                );
            }
        }
        if !claims.id.is_empty() {
            extra.insert(
                "authentication.kubernetes.io/credential-id".to_string(),
                vec![format!("JTI={}", claims.id)],
            );
        }
        let accepted = audiences
            .iter()
            .filter(|a| claims.audiences.contains(a))
            .cloned()
            .collect();
        let user = UserInfo {
            name: claims.subject(),
            uid: claims.service_account_uid.clone(),
            groups: Vec::new(),
            extra,
        };
        Ok((user.with_implied_groups(), accepted))
    }

    /// Apply `Impersonate-*` headers: the user the request then acts as, once the requester
    /// may impersonate every part of it.
    pub async fn impersonate(
        &self,
        requester: UserInfo,
        headers: &HeaderMap,
        rest: &Rest,
    ) -> Result<UserInfo, ApiError> {
        let values = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_string)
                .collect()
        };
        let user = values("impersonate-user").into_iter().next();
        let groups = values("impersonate-group");
        let uid = values("impersonate-uid").into_iter().next();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            if let Some(key) = name.as_str().strip_prefix("impersonate-extra-") {
                let key = percent_encoding::percent_decode_str(key)
                    .decode_utf8_lossy()
                    .to_lowercase();
                if let Ok(v) = value.to_str() {
                    extra.entry(key).or_default().push(v.to_string());
                }
            }
        }
        let Some(name) = user else {
            if groups.is_empty() && uid.is_none() && extra.is_empty() {
                return Ok(requester);
            }
            return Err(ApiError::bad_request(
                "requested impersonation without impersonating a user",
            ));
        };
        let mut checks = Vec::new();
        if let Some(rest) = name.strip_prefix("system:serviceaccount:") {
            let (ns, sa) = rest.split_once(':').unwrap_or(("", rest));
            checks.push(Attributes {
                namespace: ns.into(),
                resource: "serviceaccounts".into(),
                name: sa.into(),
                ..Attributes::default()
            });
        } else {
            checks.push(Attributes {
                resource: "users".into(),
                name: name.clone(),
                ..Attributes::default()
            });
        }
        for group in &groups {
            checks.push(Attributes {
                resource: "groups".into(),
                name: group.clone(),
                ..Attributes::default()
            });
        }
        if let Some(uid) = &uid {
            checks.push(Attributes {
                api_group: "authentication.k8s.io".into(),
                resource: "uids".into(),
                name: uid.clone(),
                ..Attributes::default()
            });
        }
        for (key, vals) in &extra {
            for v in vals {
                checks.push(Attributes {
                    api_group: "authentication.k8s.io".into(),
                    resource: "userextras".into(),
                    subresource: key.clone(),
                    name: v.clone(),
                    ..Attributes::default()
                });
            }
        }
        for mut attrs in checks {
            attrs.user = requester.clone();
            attrs.verb = "impersonate".into();
            attrs.resource_request = true;
            if let Decision::Deny(reason) = self.authorize(&attrs, rest).await {
                return Err(attrs.forbidden(&reason));
            }
        }
        Ok(UserInfo {
            name,
            uid: uid.unwrap_or_default(),
            groups,
            extra,
        }
        .with_implied_groups())
    }

    /// Upstream's escalation check for an RBAC object about to be written by `user`: a role's
    /// rules, or a binding's role's, must be held already, unless the user may `escalate` the
    /// role or `bind` the referenced role.
    pub async fn confirm_no_escalation(
        &self,
        plural: &str,
        namespace: Option<&str>,
        object: &serde_json::Value,
        user: &UserInfo,
        rest: &Rest,
    ) -> Result<(), ApiError> {
        let ns = namespace.unwrap_or("");
        let name = object
            .pointer("/metadata/name")
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_string();
        let may = |verb: &str, resource: &str, target: &str| Attributes {
            user: user.clone(),
            verb: verb.into(),
            namespace: ns.into(),
            api_group: "rbac.authorization.k8s.io".into(),
            resource: resource.into(),
            name: target.into(),
            resource_request: true,
            ..Attributes::default()
        };
        let index = self.rbac.index();
        let wanted: Vec<rbac::Rule> = match plural {
            "roles" | "clusterroles" => {
                let attrs = may("escalate", plural, &name);
                if matches!(self.authorize(&attrs, rest).await, Decision::Allow(_)) {
                    return Ok(());
                }
                if plural == "clusterroles"
                    && object.get("aggregationRule").is_some_and(|a| !a.is_null())
                {
                    // An aggregation rule can gather anything: it needs every permission.
                    vec![
                        rbac::Rule {
                            verbs: vec!["*".into()],
                            api_groups: vec!["*".into()],
                            resources: vec!["*".into()],
                            ..rbac::Rule::default()
                        },
                        rbac::Rule {
                            verbs: vec!["*".into()],
                            non_resource_urls: vec!["*".into()],
                            ..rbac::Rule::default()
                        },
                    ]
                } else {
                    rbac::rules_of(object)
                }
            }
            "rolebindings" | "clusterrolebindings" => {
                let kind = object
                    .pointer("/roleRef/kind")
                    .and_then(|k| k.as_str())
                    .unwrap_or("");
                let role = object
                    .pointer("/roleRef/name")
                    .and_then(|k| k.as_str())
                    .unwrap_or("");
                let resource = if kind == "ClusterRole" {
                    "clusterroles"
                } else {
                    "roles"
                };
                let attrs = may("bind", resource, role);
                if matches!(self.authorize(&attrs, rest).await, Decision::Allow(_)) {
                    return Ok(());
                }
                match index.role_rules(ns, kind, role) {
                    Some(rules) => rules.as_ref().clone(),
                    None => {
                        let plural_role = if kind == "ClusterRole" {
                            "clusterroles"
                        } else {
                            "roles"
                        };
                        return Err(ApiError::forbidden(
                            "rbac.authorization.k8s.io",
                            plural,
                            &name,
                            &format!("{plural_role}.rbac.authorization.k8s.io {role:?} not found"),
                            None,
                        ));
                    }
                }
            }
            _ => return Ok(()),
        };
        let held = index.rules_for(user, ns);
        let missing = rbac::compact_rules(rbac::uncovered(&held, &wanted));
        if missing.is_empty() {
            return Ok(());
        }
        let groups = user
            .groups
            .iter()
            .map(|g| format!("{g:?}"))
            .collect::<Vec<_>>()
            .join(" ");
        let rules = missing
            .iter()
            .map(rbac::Rule::compact)
            .collect::<Vec<_>>()
            .join("\n");
        Err(ApiError::forbidden(
            "rbac.authorization.k8s.io",
            plural,
            &name,
            &format!(
                "user {:?} (groups=[{groups}]) is attempting to grant RBAC permissions not currently held:\n{rules}",
                user.name
            ),
            None,
        ))
    }

    /// Node authorizer, then RBAC.
    pub async fn authorize(&self, attrs: &Attributes, rest: &Rest) -> Decision {
        authorize(attrs, &self.rbac, &rest.cache).await
    }
}

/// The Node authorizer (reading `cache`), then RBAC: the decision of both the request filter
/// and the admission plugins that ask on a request's behalf.
pub async fn authorize(attrs: &Attributes, rbac: &rbac::Cache, cache: &WatchCache) -> Decision {
    let mut reason = String::new();
    if let Some(decision) = node::authorize(attrs, cache).await {
        match decision {
            Decision::Allow(r) => return Decision::Allow(r),
            Decision::Deny(r) => reason = r,
        }
    }
    match rbac.index().authorize(attrs) {
        Some(why) => Decision::Allow(why),
        None => Decision::Deny(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines() {
        let tokens = parse_tokens(
            "# comment\nt1,alice,u1,\"dev,ops\"\nt2,bob,u2\n\"t,3\",carol,u3,admins\n",
        )
        .unwrap();
        assert_eq!(tokens["t1"].name, "alice");
        assert_eq!(tokens["t1"].groups, ["dev", "ops"]);
        assert!(tokens["t2"].groups.is_empty());
        assert_eq!(tokens["t,3"].groups, ["admins"]);
        assert_eq!(parse_tokens("only,two\n"), Err(1));
    }

    #[test]
    fn implied_groups() {
        let sa = UserInfo {
            name: "system:serviceaccount:ns1:builder".into(),
            ..UserInfo::default()
        }
        .with_implied_groups();
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns1",
                "system:authenticated"
            ]
        );
        assert_eq!(
            UserInfo::anonymous().with_implied_groups().groups,
            [UNAUTHENTICATED]
        );
    }

    fn info(method: http::Method, path: &str, query: &str) -> String {
        let a = request_attributes(
            &method,
            path,
            &crate::request::Query::parse(Some(query)),
            &UserInfo::default(),
        );
        if a.resource_request {
            format!(
                "{} {}/{} ns={} {}/{} name={}",
                a.verb, a.api_group, a.api_version, a.namespace, a.resource, a.subresource, a.name
            )
        } else {
            format!("{} {}", a.verb, a.path)
        }
    }

    #[test]
    fn request_info_as_upstream() {
        use http::Method;
        assert_eq!(
            info(Method::GET, "/api/v1/namespaces/default/pods", ""),
            "list /v1 ns=default pods/ name="
        );
        assert_eq!(
            info(Method::GET, "/api/v1/pods", "watch=true"),
            "watch /v1 ns= pods/ name="
        );
        assert_eq!(
            info(
                Method::GET,
                "/api/v1/namespaces/a/pods",
                "fieldSelector=metadata.name%3Dweb&watch=1"
            ),
            "watch /v1 ns=a pods/ name=web"
        );
        assert_eq!(
            info(Method::GET, "/api/v1/namespaces/a", ""),
            "get /v1 ns=a namespaces/ name=a"
        );
        assert_eq!(
            info(Method::PUT, "/api/v1/namespaces/a/finalize", ""),
            "update /v1 ns=a namespaces/finalize name=a"
        );
        assert_eq!(
            info(
                Method::POST,
                "/api/v1/namespaces/a/serviceaccounts/sa/token",
                ""
            ),
            "create /v1 ns=a serviceaccounts/token name=sa"
        );
        assert_eq!(
            info(
                Method::PATCH,
                "/apis/apps/v1/namespaces/a/deployments/web/scale",
                ""
            ),
            "patch apps/v1 ns=a deployments/scale name=web"
        );
        assert_eq!(
            info(Method::DELETE, "/apis/apps/v1/namespaces/a/deployments", ""),
            "deletecollection apps/v1 ns=a deployments/ name="
        );
        assert_eq!(info(Method::GET, "/apis/apps/v1", ""), "get /apis/apps/v1");
        assert_eq!(info(Method::GET, "/api/v1", ""), "get /api/v1");
        assert_eq!(info(Method::GET, "/healthz", ""), "get /healthz");
    }

    #[test]
    fn forbidden_messages() {
        let bob = UserInfo {
            name: "bob".into(),
            ..UserInfo::default()
        };
        let a = Attributes {
            user: bob.clone(),
            verb: "list".into(),
            namespace: "default".into(),
            resource: "pods".into(),
            resource_request: true,
            ..Attributes::default()
        };
        let e = a.forbidden("");
        assert_eq!(e.code.as_u16(), 403);
        assert_eq!(
            e.message,
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let a = Attributes {
            user: bob.clone(),
            verb: "impersonate".into(),
            resource: "users".into(),
            name: "alice".into(),
            resource_request: true,
            ..Attributes::default()
        };
        assert_eq!(
            a.forbidden("").message,
            "users \"alice\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );
        let a = Attributes {
            user: bob,
            verb: "get".into(),
            path: "/metrics".into(),
            ..Attributes::default()
        };
        assert_eq!(
            a.forbidden("").message,
            "forbidden: User \"bob\" cannot get path \"/metrics\""
        );
    }
}
