//! The audit log (`--audit-log-path`, `--audit-log-level`) as an operator reads it: one `audit.k8s.io/v1` Event JSON line per request kubectl makes, naming the user, the impersonated user, the object and the outcome.

use std::path::Path;
use std::time::{Duration, Instant};

use k1s_tests::Server;
use serde_json::Value;

fn server(level: &str) -> (tempfile::TempDir, Server, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("audit.log");
    let server = Server::start(
        tmp.path().join("data"),
        &[
            "--ephemeral",
            "--audit-log-path",
            path.to_str().unwrap(),
            "--audit-log-level",
            level,
        ],
    )
    .unwrap();
    (tmp, server, path)
}

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The first event `matches` selects, waiting for the writer to flush it.
fn find(path: &Path, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(ev) = events(path).into_iter().find(|e| matches(e)) {
            return ev;
        }
        assert!(Instant::now() < deadline, "no audit event for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_configmap_x(ev: &Value, verb: &str) -> bool {
    ev["verb"] == verb
        && ev["objectRef"]["resource"] == "configmaps"
        && ev["objectRef"]["name"] == "x"
}

#[test]
fn metadata_level_names_users_objects_and_outcomes() {
    let (_tmp, s, path) = server("Metadata");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the audit log is private");

    s.kubectl_ok(&["create", "configmap", "x", "--from-literal=k=v"])
        .unwrap();
    let err = s.kubectl_err(&["get", "cm", "x", "--as=bob"]).unwrap();
    assert!(err.contains("forbidden"), "{err}");

    let create = find(&path, "the create", |e| is_configmap_x(e, "create"));
    assert_eq!(create["kind"], "Event");
    assert_eq!(create["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(create["level"], "Metadata");
    assert_eq!(create["stage"], "ResponseComplete");
    assert_eq!(create["user"]["username"], "system:admin");
    assert!(
        create["user"]["groups"]
            .as_array()
            .unwrap()
            .contains(&"system:masters".into())
    );
    assert!(create.get("impersonatedUser").is_none());
    assert_eq!(
        create["objectRef"],
        serde_json::json!({"resource": "configmaps", "namespace": "default", "name": "x", "apiVersion": "v1"})
    );
    assert_eq!(create["responseStatus"]["code"], 201);
    assert_eq!(
        create["annotations"]["authorization.k8s.io/decision"],
        "allow"
    );
    assert!(
        create["requestURI"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/namespaces/default/configmaps")
    );
    assert!(create["userAgent"].as_str().unwrap().starts_with("kubectl"));
    assert!(!create["sourceIPs"].as_array().unwrap().is_empty());
    assert!(create.get("requestObject").is_none(), "Metadata level");
    assert!(uuid_like(create["auditID"].as_str().unwrap()));

    let get = find(&path, "the impersonated get", |e| is_configmap_x(e, "get"));
    assert_eq!(get["user"]["username"], "system:admin");
    assert_eq!(get["impersonatedUser"]["username"], "bob");
    assert_eq!(get["responseStatus"]["code"], 403);
    assert_eq!(get["responseStatus"]["status"], "Failure");
    assert_eq!(get["responseStatus"]["reason"], "Forbidden");
    assert!(
        get["responseStatus"]["message"]
            .as_str()
            .unwrap()
            .contains("User \"bob\" cannot get resource \"configmaps\""),
        "{get}"
    );
    assert_eq!(
        get["annotations"]["authorization.k8s.io/decision"],
        "forbid"
    );
    for field in ["requestReceivedTimestamp", "stageTimestamp"] {
        let t = get[field].as_str().unwrap();
        assert_eq!(t.len(), "2006-01-02T15:04:05.000000Z".len(), "{t}");
        assert!(t.ends_with('Z'));
    }

    // A watch is logged once, when its response starts.
    let out = s.curl_with(
        "GET",
        "application/json",
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
        "",
    );
    assert!(out.ends_with("200"), "{out}");
    let watch = find(&path, "the watch", |e| {
        e["verb"] == "watch"
            && e["requestURI"]
                .as_str()
                .unwrap()
                .contains("timeoutSeconds=1")
    });
    assert_eq!(watch["stage"], "ResponseStarted");
    assert_eq!(watch["responseStatus"]["code"], 200);
}

#[test]
fn request_level_records_the_body() {
    let (_tmp, s, path) = server("Request");
    s.kubectl_ok(&["create", "configmap", "x", "--from-literal=k=v"])
        .unwrap();
    let create = find(&path, "the create", |e| is_configmap_x(e, "create"));
    assert_eq!(create["level"], "Request");
    assert_eq!(create["responseStatus"]["code"], 201);
    assert_eq!(create["requestObject"]["kind"], "ConfigMap");
    assert_eq!(create["requestObject"]["metadata"]["name"], "x");
    assert_eq!(create["requestObject"]["data"]["k"], "v");
}

#[test]
fn pod_security_audit_mode_annotates_violating_pods() {
    let (_tmp, s, path) = server("Metadata");
    s.kubectl_ok(&["create", "namespace", "team"]).unwrap();
    s.kubectl_ok(&[
        "label",
        "namespace",
        "team",
        "pod-security.kubernetes.io/audit=restricted",
    ])
    .unwrap();
    // Its default service account (the controller may have made it first).
    let _ = s
        .kubectl()
        .args(["create", "serviceaccount", "default", "-n", "team"])
        .output();
    // Audit mode neither refuses nor warns.
    let out = s
        .kubectl()
        .args(["run", "web", "--image=nginx", "-n", "team"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");

    let create = find(&path, "the pod create", |e| {
        e["verb"] == "create"
            && e["objectRef"]["resource"] == "pods"
            && e["objectRef"]["name"] == "web"
    });
    assert_eq!(create["responseStatus"]["code"], 201);
    assert_eq!(
        create["annotations"]["pod-security.kubernetes.io/audit-violations"],
        "would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"web\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"web\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"web\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"web\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
    assert_eq!(
        create["annotations"]["pod-security.kubernetes.io/enforce-policy"],
        "privileged:latest"
    );
    assert!(
        s.kubectl_ok(&["get", "pod", "web", "-n", "team"]).is_ok(),
        "the pod was created"
    );
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|&c| c == '-').count() == 4
}
