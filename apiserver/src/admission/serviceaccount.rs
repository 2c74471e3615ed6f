//! ServiceAccount: a new pod runs as `default` unless it names a service account, which must exist; it gets the projected `kube-api-access-<random>` volume (a bound token, `kube-root-ca.crt` and its namespace) mounted in every container, and the account's image pull secrets.

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Attributes, Lookup, Operation, Plugin, resource};
use crate::object::meta_str;
use crate::status::ApiResult;

pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const VOLUME_PREFIX: &str = "kube-api-access-";
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const ENFORCE_MOUNTABLE_SECRETS: &str = "kubernetes.io/enforce-mountable-secrets";
/// Upstream's `WarnOnlyBoundTokenExpirationSeconds`: one hour and seven seconds.
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

pub struct ServiceAccount;

/// The projected volume upstream's `TokenVolumeSource` builds, as stored after defaulting.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

fn is_mirror(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_ANNOTATION))
        .is_some()
}

fn containers_mut(spec: &mut Value) -> impl Iterator<Item = &mut Value> {
    let spec = spec.as_object_mut();
    spec.into_iter().flat_map(|s| {
        s.iter_mut()
            .filter(|(k, _)| *k == "initContainers" || *k == "containers")
            .flat_map(|(_, v)| v.as_array_mut().into_iter().flatten())
    })
}

/// Mount the token volume at the token path in every container that has nothing there yet,
/// adding the volume (named by `name` unless the pod already has one) if any container needs it.
pub fn mount_token(pod: &mut Value, generate: impl FnOnce() -> String) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(str::to_string);
    let volume = existing.clone().unwrap_or_else(generate);
    let mount = json!({"name": volume, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for container in containers_mut(spec) {
        let mounts = container
            .as_object_mut()
            .map(|c| c.entry("volumeMounts").or_insert_with(|| json!([])));
        let Some(mounts) = mounts.and_then(Value::as_array_mut) else {
            continue;
        };
        if !mounts
            .iter()
            .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH))
        {
            mounts.push(mount.clone());
            needed = true;
        }
    }
    if existing.is_none() && needed {
        let volumes = spec
            .as_object_mut()
            .map(|s| s.entry("volumes").or_insert_with(|| json!([])));
        if let Some(volumes) = volumes.and_then(Value::as_array_mut) {
            volumes.push(token_volume(&volume));
        }
    }
}

/// Upstream's `limitSecretReferences`: with `kubernetes.io/enforce-mountable-secrets: "true"`,
/// a pod may use only the secrets its service account lists.
fn secret_reference_error(sa: &Value, pod: &Value) -> Option<String> {
    let sa_name = meta_str(sa, "name").unwrap_or("");
    let names = |field: &str| -> Vec<String> {
        sa.get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    };
    let mountable = names("secrets");
    let spec = pod.get("spec")?;
    let list = |f: &str| {
        spec.get(f)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for volume in list("volumes") {
        if let Some(secret) = volume.pointer("/secret/secretName").and_then(Value::as_str)
            && !mountable.iter().any(|m| m == secret)
        {
            return Some(format!(
                "volume with secret.secretName=\"{secret}\" is not allowed because service account {sa_name} does not reference that secret"
            ));
        }
    }
    for (field, what) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        for c in list(field) {
            for env in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                if let Some(secret) = env
                    .pointer("/valueFrom/secretKeyRef/name")
                    .and_then(Value::as_str)
                    && !mountable.iter().any(|m| m == secret)
                {
                    return Some(format!(
                        "{what} {} with envVar {} referencing secret.secretName=\"{secret}\" is not allowed because service account {sa_name} does not reference that secret",
                        c.get("name").and_then(Value::as_str).unwrap_or(""),
                        env.get("name").and_then(Value::as_str).unwrap_or("")
                    ));
                }
            }
        }
    }
    let pull = names("imagePullSecrets");
    for (i, s) in list("imagePullSecrets").iter().enumerate() {
        let name = s.get("name").and_then(Value::as_str).unwrap_or("");
        if !pull.iter().any(|p| p == name) {
            return Some(format!(
                "imagePullSecrets[{i}].name=\"{name}\" is not allowed because service account {sa_name} does not reference that imagePullSecret"
            ));
        }
    }
    None
}

impl ServiceAccount {
    /// The service account, from the cache or the store; the `default` one is waited for a
    /// little (up to ten reads 100–200 ms apart), since its controller creates it with the
    /// namespace.
    async fn account(
        &self,
        cluster: &dyn Lookup,
        ns: &str,
        name: &str,
    ) -> ApiResult<Option<Value>> {
        let accounts = resource("", "serviceaccounts");
        let attempts = if name == DEFAULT_SERVICE_ACCOUNT {
            10
        } else {
            1
        };
        let pause = Duration::from_millis(rand::random_range(100..200));
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(pause).await;
            }
            if let Some(sa) = cluster.get(accounts, Some(ns), name).await? {
                return Ok(Some(sa));
            }
        }
        Ok(None)
    }

    fn ignores(attrs: &Attributes<'_>) -> bool {
        !attrs.is("", "pods") || attrs.subresource.is_some() || attrs.operation != Operation::Create
    }

    fn mirror_error(attrs: &Attributes<'_>, pod: &Value) -> Option<crate::status::ApiError> {
        let spec = pod.get("spec")?;
        if spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            return Some(
                attrs.forbidden(Some(pod), "a mirror pod may not reference service accounts"),
            );
        }
        let volumes = spec
            .get("volumes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let text = pod.to_string();
        if volumes.iter().any(|v| v.get("secret").is_some())
            || text.contains("\"secretKeyRef\"")
            || text.contains("\"secretRef\"")
            || spec
                .get("imagePullSecrets")
                .and_then(Value::as_array)
                .is_some_and(|l| !l.is_empty())
        {
            return Some(attrs.forbidden(Some(pod), "a mirror pod may not reference secrets"));
        }
        if volumes.iter().any(|v| {
            v.pointer("/projected/sources")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|p| p.get("serviceAccountToken").is_some()))
        }) {
            return Some(attrs.forbidden(
                Some(pod),
                "a mirror pod may not use ServiceAccountToken volume projections",
            ));
        }
        None
    }

    fn not_found(attrs: &Attributes<'_>, pod: &Value, name: &str) -> crate::status::ApiError {
        attrs.forbidden(
            Some(pod),
            &format!(
                "error looking up service account {}/{name}: serviceaccount \"{name}\" not found",
                attrs.namespace
            ),
        )
    }
}

impl Plugin for ServiceAccount {
    fn admit<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        pod: &'a mut Value,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            if Self::ignores(attrs)
                || is_mirror(pod)
                || !pod.get("spec").is_some_and(Value::is_object)
            {
                return Ok(());
            }
            let name = match pod
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
            {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => {
                    pod["spec"]["serviceAccountName"] = json!(DEFAULT_SERVICE_ACCOUNT);
                    DEFAULT_SERVICE_ACCOUNT.to_string()
                }
            };
            let Some(sa) = self.account(cluster, attrs.namespace, &name).await? else {
                return Err(Self::not_found(attrs, pod, &name));
            };
            let automount = pod
                .pointer("/spec/automountServiceAccountToken")
                .and_then(Value::as_bool)
                .or_else(|| {
                    sa.get("automountServiceAccountToken")
                        .and_then(Value::as_bool)
                })
                .unwrap_or(true);
            if automount {
                mount_token(pod, || {
                    format!("{VOLUME_PREFIX}{}", crate::object::random_suffix())
                });
            }
            let has_pull_secrets = pod
                .pointer("/spec/imagePullSecrets")
                .and_then(Value::as_array)
                .is_some_and(|l| !l.is_empty());
            if !has_pull_secrets
                && let Some(list) = sa
                    .get("imagePullSecrets")
                    .and_then(Value::as_array)
                    .filter(|l| !l.is_empty())
            {
                let names: Vec<Value> = list
                    .iter()
                    .map(|s| json!({"name": s.get("name").cloned().unwrap_or(json!(""))}))
                    .collect();
                pod["spec"]["imagePullSecrets"] = json!(names);
            }
            Ok(())
        })
    }

    fn validate<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        pod: Option<&'a Value>,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            let Some(pod) = pod else { return Ok(()) };
            if Self::ignores(attrs) {
                return Ok(());
            }
            if is_mirror(pod) {
                return match Self::mirror_error(attrs, pod) {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
            let name = pod
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_SERVICE_ACCOUNT);
            let Some(sa) = self.account(cluster, attrs.namespace, name).await? else {
                return Err(Self::not_found(attrs, pod, name));
            };
            let enforce = sa
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(ENFORCE_MOUNTABLE_SECRETS))
                .and_then(Value::as_str)
                .is_some_and(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"));
            if enforce && let Some(detail) = secret_reference_error(&sa, pod) {
                return Err(attrs.forbidden(Some(pod), &detail));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fake, admin, create, run};
    use super::*;

    #[test]
    fn mounts_the_token_volume_in_every_container() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]}],
        }});
        mount_token(&mut pod, || "kube-api-access-abcde".into());
        let mount = json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(
            pod["spec"]["initContainers"][0]["volumeMounts"],
            json!([mount])
        );
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            pod["spec"]["volumes"],
            json!([token_volume("kube-api-access-abcde")])
        );
        // Idempotent: the existing volume is reused.
        mount_token(&mut pod, || unreachable!());
        assert_eq!(pod["spec"]["volumes"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn defaults_the_account_and_requires_named_ones() {
        let user = admin();
        let attrs = create("", "pods", "ns", "p", &user);
        let cluster = Fake::with(vec![
            (
                "serviceaccounts",
                json!({"metadata": {"name": "builder", "namespace": "ns"}, "imagePullSecrets": [{"name": "reg"}], "automountServiceAccountToken": false}),
            ),
            (
                "serviceaccounts",
                json!({"metadata": {"name": "default", "namespace": "ns"}}),
            ),
        ]);
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        run(&ServiceAccount, &attrs, &mut pod, &cluster).unwrap();
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert!(
            pod["spec"]["volumes"][0]["name"]
                .as_str()
                .unwrap()
                .starts_with(VOLUME_PREFIX)
        );

        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "builder", "containers": [{"name": "c"}]}});
        run(&ServiceAccount, &attrs, &mut pod, &cluster).unwrap();
        assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "reg"}]));
        assert!(pod["spec"].get("volumes").is_none(), "automount off: {pod}");

        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c"}]}});
        let err = run(&ServiceAccount, &attrs, &mut pod, &cluster).unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: error looking up service account ns/ghost: serviceaccount \"ghost\" not found"
        );

        // Without its `default` account (looked for a while: the controller makes it), a
        // namespace runs no pods.
        let attrs = create("", "pods", "empty", "p", &user);
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        let err = run(&ServiceAccount, &attrs, &mut pod, &cluster).unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: error looking up service account empty/default: serviceaccount \"default\" not found"
        );
    }

    #[test]
    fn enforced_mountable_secrets() {
        let user = admin();
        let attrs = create("", "pods", "ns", "p", &user);
        let cluster = Fake::with(vec![(
            "serviceaccounts",
            json!({"metadata": {"name": "strict", "namespace": "ns", "annotations": {ENFORCE_MOUNTABLE_SECRETS: "true"}}, "secrets": [{"name": "ok"}]}),
        )]);
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "strict", "containers": [{"name": "c"}],
            "volumes": [{"name": "v", "secret": {"secretName": "other"}}]}});
        let err = run(&ServiceAccount, &attrs, &mut pod, &cluster).unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: volume with secret.secretName=\"other\" is not allowed because service account strict does not reference that secret"
        );
    }
}
