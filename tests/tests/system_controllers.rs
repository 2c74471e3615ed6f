//! The controllers every namespace relies on, as kubectl users meet them: a `default` service account and the `kube-root-ca.crt` ConfigMap in every namespace (back when deleted or edited), and resource quotas whose status counts what the namespace holds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k1s_tests::Server;

/// Bound of every wait for a controller: generous, since CI machines are slow.
const WAIT: Duration = Duration::from_secs(30);

fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    (tmp, server)
}

fn write(dir: &std::path::Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

/// Poll `check` until it returns `Some`, for up to `WAIT`; the last value seen is in the
/// failure message.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}; last seen: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn jsonpath(s: &Server, args: &[&str], path: &str) -> Result<String, String> {
    let output = format!("jsonpath={path}");
    let mut all = args.to_vec();
    all.extend(["-o", &output]);
    s.kubectl_ok(&all).map_err(|e| e.to_string())
}

/// Wait until `jsonpath` of `args` reads `expect`.
fn wait_for(s: &Server, args: &[&str], path: &str, expect: &str) {
    eventually(&format!("{args:?} {path} to be {expect:?}"), || {
        let got = jsonpath(s, args, path)?;
        if got == expect { Ok(()) } else { Err(got) }
    });
}

fn uid(s: &Server, args: &[&str]) -> String {
    jsonpath(s, args, "{.metadata.uid}").unwrap()
}

#[test]
fn every_namespace_gets_a_default_service_account_and_the_root_ca() {
    let (tmp, s) = server();
    let ca = std::fs::read_to_string(tmp.path().join("data/tls/ca.crt")).unwrap();
    s.kubectl_ok(&["create", "namespace", "team"]).unwrap();

    for ns in ["team", "default", "kube-system", "kube-public"] {
        wait_for(
            &s,
            &["get", "serviceaccount", "default", "-n", ns],
            "{.metadata.name}",
            "default",
        );
        let published = eventually(&format!("kube-root-ca.crt in {ns}"), || {
            jsonpath(
                &s,
                &["get", "configmap", "kube-root-ca.crt", "-n", ns],
                r"{.data.ca\.crt}",
            )
        });
        assert_eq!(published, ca, "the ca.crt published in {ns}");
    }
    assert_eq!(
        jsonpath(
            &s,
            &["get", "configmap", "kube-root-ca.crt", "-n", "team"],
            r"{.metadata.annotations.kubernetes\.io/description}"
        )
        .unwrap(),
        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
    );

    assert_eq!(
        jsonpath(
            &s,
            &["get", "configmap", "kube-root-ca.crt", "-n", "team"],
            "{.metadata.managedFields[*].manager}"
        )
        .unwrap(),
        "kube-controller-manager"
    );

    // Deleted, both come back (as new objects).
    let sa_args = ["get", "serviceaccount", "default", "-n", "team"];
    let cm_args = ["get", "configmap", "kube-root-ca.crt", "-n", "team"];
    let (sa_uid, cm_uid) = (uid(&s, &sa_args), uid(&s, &cm_args));
    s.kubectl_ok(&["delete", "serviceaccount", "default", "-n", "team"])
        .unwrap();
    s.kubectl_ok(&["delete", "configmap", "kube-root-ca.crt", "-n", "team"])
        .unwrap();
    for (args, old) in [(&sa_args, &sa_uid), (&cm_args, &cm_uid)] {
        eventually(&format!("{args:?} recreated"), || {
            let now = jsonpath(&s, args, "{.metadata.uid}")?;
            if now != *old && !now.is_empty() {
                Ok(())
            } else {
                Err(now)
            }
        });
    }
    wait_for(&s, &cm_args, r"{.data.ca\.crt}", &ca);

    // Edited, the ConfigMap is put back as it was.
    s.kubectl_ok(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "team",
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"tampered","extra":"x"}}"#,
    ])
    .unwrap();
    wait_for(
        &s,
        &cm_args,
        "{.data}",
        &serde_json::json!({"ca.crt": ca}).to_string(),
    );

    // A terminating namespace gets nothing new; once gone, a namespace of the same name
    // starts with both again.
    s.kubectl_ok(&["delete", "namespace", "team", "--timeout=60s"])
        .unwrap();
    s.kubectl_ok(&["create", "namespace", "team"]).unwrap();
    wait_for(&s, &sa_args, "{.metadata.name}", "default");
    wait_for(&s, &cm_args, r"{.data.ca\.crt}", &ca);
}

/// The quota's `status.used`, or why it cannot be read yet.
fn used(s: &Server, ns: &str, name: &str) -> Result<BTreeMap<String, String>, String> {
    let text = jsonpath(
        s,
        &["get", "resourcequota", name, "-n", ns],
        "{.status.used}",
    )?;
    serde_json::from_str::<BTreeMap<String, String>>(&text).map_err(|_| text)
}

fn wait_for_used(s: &Server, ns: &str, name: &str, expect: &[(&str, &str)]) {
    let expect: BTreeMap<String, String> = expect
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    eventually(&format!("quota {ns}/{name} to use {expect:?}"), || {
        let got = used(s, ns, name)?;
        if got == expect {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
}

fn pod(name: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources:\n      requests:\n        cpu: {cpu}\n"
    )
}

/// `kubectl describe quota`'s rows, each as its whitespace-separated cells.
fn describe_rows(s: &Server) -> Vec<Vec<String>> {
    s.kubectl_ok(&["describe", "quota", "compute", "-n", "shop"])
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn a_quota_counts_what_its_namespace_holds() {
    let (tmp, s) = server();
    s.kubectl_ok(&["create", "namespace", "shop"]).unwrap();
    // Pods need the namespace's service account (the ServiceAccount admission plugin).
    wait_for(
        &s,
        &["get", "serviceaccount", "default", "-n", "shop"],
        "{.metadata.name}",
        "default",
    );
    s.kubectl_ok(&[
        "create",
        "quota",
        "compute",
        "-n",
        "shop",
        "--hard=pods=2,requests.cpu=1,count/configmaps=5",
    ])
    .unwrap();
    wait_for(
        &s,
        &["get", "quota", "compute", "-n", "shop"],
        "{.status.hard}",
        r#"{"count/configmaps":"5","pods":"2","requests.cpu":"1"}"#,
    );
    // The root CA ConfigMap counts, as upstream.
    wait_for_used(
        &s,
        "shop",
        "compute",
        &[
            ("count/configmaps", "1"),
            ("pods", "0"),
            ("requests.cpu", "0"),
        ],
    );

    let a = write(tmp.path(), "a.yaml", &pod("a", "500m"));
    let b = write(tmp.path(), "b.yaml", &pod("b", "250m"));
    s.kubectl_ok(&["create", "-f", &a]).unwrap();
    s.kubectl_ok(&["create", "-f", &b]).unwrap();
    for name in ["one", "two"] {
        s.kubectl_ok(&[
            "create",
            "configmap",
            name,
            "-n",
            "shop",
            "--from-literal=k=v",
        ])
        .unwrap();
    }
    wait_for_used(
        &s,
        "shop",
        "compute",
        &[
            ("count/configmaps", "3"),
            ("pods", "2"),
            ("requests.cpu", "750m"),
        ],
    );

    let rows = describe_rows(&s);
    let expect: Vec<Vec<String>> = [
        "Name: compute",
        "Namespace: shop",
        "Resource Used Hard",
        "-------- ---- ----",
        "count/configmaps 3 5",
        "pods 2 2",
        "requests.cpu 750m 1",
    ]
    .iter()
    .map(|l| l.split_whitespace().map(str::to_string).collect())
    .collect();
    assert_eq!(rows, expect, "kubectl describe quota");
    let table = s
        .kubectl_ok(&["get", "quota", "-n", "shop", "--no-headers"])
        .unwrap();
    assert!(
        table.contains("count/configmaps: 3/5, pods: 2/2, requests.cpu: 750m/1"),
        "{table}"
    );

    // Deleting releases usage.
    s.kubectl_ok(&["delete", "pod", "a", "-n", "shop", "--wait=false"])
        .unwrap();
    s.kubectl_ok(&["delete", "configmap", "one", "-n", "shop"])
        .unwrap();
    wait_for_used(
        &s,
        "shop",
        "compute",
        &[
            ("count/configmaps", "2"),
            ("pods", "1"),
            ("requests.cpu", "250m"),
        ],
    );

    // A pod that has finished uses no compute quota.
    s.kubectl_ok(&[
        "patch",
        "pod",
        "b",
        "-n",
        "shop",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Succeeded"}}"#,
    ])
    .unwrap();
    wait_for_used(
        &s,
        "shop",
        "compute",
        &[
            ("count/configmaps", "2"),
            ("pods", "0"),
            ("requests.cpu", "0"),
        ],
    );

    // A changed spec is reflected in the status at once.
    s.kubectl_ok(&[
        "patch",
        "quota",
        "compute",
        "-n",
        "shop",
        "--type=merge",
        "-p",
        r#"{"spec":{"hard":{"pods":"3","limits.memory":"1Gi"}}}"#,
    ])
    .unwrap();
    wait_for_used(
        &s,
        "shop",
        "compute",
        &[
            ("count/configmaps", "2"),
            ("limits.memory", "0"),
            ("pods", "0"),
            ("requests.cpu", "0"),
        ],
    );
    assert_eq!(
        jsonpath(
            &s,
            &["get", "quota", "compute", "-n", "shop"],
            "{.status.hard.pods}"
        )
        .unwrap(),
        "3"
    );
}

#[test]
fn quota_scopes_and_object_counts_of_any_resource() {
    let (tmp, s) = server();
    s.kubectl_ok(&["create", "namespace", "shop"]).unwrap();
    wait_for(
        &s,
        &["get", "serviceaccount", "default", "-n", "shop"],
        "{.metadata.name}",
        "default",
    );
    let quotas = write(
        tmp.path(),
        "quotas.yaml",
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: best-effort\n  namespace: shop\nspec:\n  hard:\n    pods: \"5\"\n  scopes: [BestEffort]\n---\napiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: objects\n  namespace: shop\nspec:\n  hard:\n    count/deployments.apps: \"3\"\n    count/secrets: \"10\"\n    services: \"4\"\n    services.nodeports: \"4\"\n",
    );
    s.kubectl_ok(&["create", "-f", &quotas]).unwrap();
    wait_for_used(&s, "shop", "best-effort", &[("pods", "0")]);
    let pods = write(
        tmp.path(),
        "pods.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: plain\n  namespace: shop\nspec:\n  containers:\n  - name: c\n    image: busybox\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: sized\n  namespace: shop\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources:\n      requests:\n        memory: 64Mi\n",
    );
    s.kubectl_ok(&["create", "-f", &pods]).unwrap();
    s.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "-n",
        "shop",
        "--image=busybox",
    ])
    .unwrap();
    s.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "np",
        "-n",
        "shop",
        "--tcp=80:8080,443:8443",
    ])
    .unwrap();
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "-n",
        "shop",
        "--from-literal=a=b",
    ])
    .unwrap();
    // The plain pod and the Deployment's pod (neither asks for resources); "sized" is not
    // BestEffort.
    wait_for_used(&s, "shop", "best-effort", &[("pods", "2")]);
    wait_for_used(
        &s,
        "shop",
        "objects",
        &[
            ("count/deployments.apps", "1"),
            ("count/secrets", "1"),
            ("services", "1"),
            ("services.nodeports", "2"),
        ],
    );
    s.kubectl_ok(&["delete", "deployment", "web", "-n", "shop"])
        .unwrap();
    wait_for_used(
        &s,
        "shop",
        "objects",
        &[
            ("count/deployments.apps", "0"),
            ("count/secrets", "1"),
            ("services", "1"),
            ("services.nodeports", "2"),
        ],
    );
}

/// The service accounts the controllers act as, each bound to its `system:controller:` role.
const CONTROLLER_ACCOUNTS: [&str; 9] = [
    "deployment-controller",
    "generic-garbage-collector",
    "namespace-controller",
    "node-controller",
    "replicaset-controller",
    "replication-controller",
    "resourcequota-controller",
    "root-ca-cert-publisher",
    "service-account-controller",
];

/// `kubectl auth can-i` as `user`: "yes" or "no" (kubectl exits 1 on "no").
fn can_i(s: &Server, user: &str, args: &[&str]) -> String {
    let out = s
        .kubectl()
        .args(["auth", "can-i", "--as", user])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every audit event in the log at `path`.
fn audit_events(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn each_controller_acts_as_its_own_service_account() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit.log");
    let s = Server::start(
        tmp.path().join("data"),
        &["--ephemeral", "--audit-log-path", audit.to_str().unwrap()],
    )
    .unwrap();

    // The controller manager made one service account per controller at start.
    let accounts = jsonpath(
        &s,
        &["get", "serviceaccounts", "-n", "kube-system"],
        "{.items[*].metadata.name}",
    )
    .unwrap();
    let accounts: Vec<&str> = accounts.split_whitespace().collect();
    for name in CONTROLLER_ACCOUNTS {
        assert!(accounts.contains(&name), "{name} in {accounts:?}");
    }
    // Only the namespace controller may empty a namespace; the controller manager itself holds
    // only its own role (list and watch for the informers, service accounts and their tokens).
    let manager = "system:kube-controller-manager";
    let namespace_controller = "system:serviceaccount:kube-system:namespace-controller";
    assert_eq!(can_i(&s, manager, &["delete", "configmaps", "-A"]), "no");
    assert_eq!(can_i(&s, manager, &["update", "namespaces/finalize"]), "no");
    assert_eq!(can_i(&s, manager, &["watch", "configmaps", "-A"]), "yes");
    assert_eq!(
        can_i(
            &s,
            manager,
            &["create", "serviceaccounts/token", "-n", "kube-system"]
        ),
        "yes"
    );
    assert_eq!(
        can_i(&s, namespace_controller, &["delete", "configmaps", "-A"]),
        "yes"
    );

    // Deleting a namespace with objects in it: the content goes, as the namespace controller.
    s.kubectl_ok(&["create", "namespace", "doomed"]).unwrap();
    s.kubectl_ok(&[
        "create",
        "configmap",
        "x",
        "-n",
        "doomed",
        "--from-literal=k=v",
    ])
    .unwrap();
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "y",
        "-n",
        "doomed",
        "--from-literal=k=v",
    ])
    .unwrap();
    s.kubectl_ok(&["delete", "namespace", "doomed", "--timeout=60s"])
        .unwrap();
    let in_doomed = |e: &serde_json::Value| e["objectRef"]["namespace"] == "doomed";
    let by_controller = |e: &serde_json::Value, resource: &str, verbs: &[&str]| {
        in_doomed(e)
            && e["objectRef"]["resource"] == resource
            && verbs.iter().any(|v| e["verb"] == *v)
            && e["user"]["username"] == namespace_controller
            && e["responseStatus"]["code"] == 200
    };
    let events = eventually("the namespace controller's audit events", || {
        let events = audit_events(&audit);
        let seen = |resource: &str| {
            events
                .iter()
                .any(|e| by_controller(e, resource, &["delete", "deletecollection"]))
        };
        let finalized = events.iter().any(|e| {
            e["objectRef"]["resource"] == "namespaces"
                && e["objectRef"]["name"] == "doomed"
                && e["objectRef"]["subresource"] == "finalize"
                && e["user"]["username"] == namespace_controller
        });
        if seen("configmaps") && seen("secrets") && finalized {
            Ok(events)
        } else {
            Err(format!("{} events", events.len()))
        }
    });
    // Each controller's requests carry its own user and user agent; the controller manager's
    // own identity only reads (the shared informers) and sets up the controllers' accounts.
    for e in &events {
        let user = e["user"]["username"].as_str().unwrap_or_default();
        let agent = e["userAgent"].as_str().unwrap_or_default();
        if let Some(account) = user.strip_prefix("system:serviceaccount:kube-system:")
            && CONTROLLER_ACCOUNTS.contains(&account)
        {
            assert!(agent.starts_with("kube-controller-manager/"), "{e}");
            assert!(agent.ends_with(&format!("/{user}")), "{e}");
        }
        if user == manager {
            let verb = e["verb"].as_str().unwrap_or_default();
            let resource = e["objectRef"]["resource"].as_str().unwrap_or_default();
            let reads = matches!(verb, "get" | "list" | "watch");
            let accounts = resource == "serviceaccounts"
                && e["objectRef"]["namespace"] == "kube-system"
                && verb == "create";
            // Its leader lease.
            let lease = resource == "leases"
                && e["objectRef"]["namespace"] == "kube-system"
                && matches!(verb, "create" | "update");
            assert!(
                reads || accounts || lease,
                "the controller manager itself wrote: {e}"
            );
        }
    }
}

#[test]
fn a_controller_whose_account_is_deleted_gets_it_back_and_carries_on() {
    let (_tmp, s) = server();
    let args = [
        "get",
        "serviceaccount",
        "service-account-controller",
        "-n",
        "kube-system",
    ];
    let old = uid(&s, &args);
    // Its token dies with the account: the next request is refused, and the controller
    // manager makes the account again and gets the controller a new token.
    s.kubectl_ok(&[
        "delete",
        "serviceaccount",
        "service-account-controller",
        "-n",
        "kube-system",
    ])
    .unwrap();
    s.kubectl_ok(&["create", "namespace", "later"]).unwrap();
    wait_for(
        &s,
        &["get", "serviceaccount", "default", "-n", "later"],
        "{.metadata.name}",
        "default",
    );
    let new = uid(&s, &args);
    assert!(!new.is_empty() && new != old, "{old} then {new}");
}

#[test]
fn an_upgrade_drops_the_controller_managers_borrowed_roles() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(data.clone(), &[]).unwrap();
    // What a data directory from before per-controller identities holds: the controller
    // manager bound to every controller's role. One of them an operator claimed as their own.
    let old_binding = |controller: &str, autoupdate: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: k1s:kube-controller-manager:{controller}\n  labels:\n    kubernetes.io/bootstrapping: rbac-defaults\n  annotations:\n    rbac.authorization.kubernetes.io/autoupdate: \"{autoupdate}\"\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: system:controller:{controller}\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: User\n  name: system:kube-controller-manager\n"
        )
    };
    let stale = write(
        tmp.path(),
        "stale.yaml",
        &old_binding("namespace-controller", "true"),
    );
    let claimed = write(
        tmp.path(),
        "claimed.yaml",
        &old_binding("root-ca-cert-publisher", "false"),
    );
    s.kubectl_ok(&["create", "-f", &stale, "-f", &claimed])
        .unwrap();
    let manager = "system:kube-controller-manager";
    eventually("the old bindings to take effect", || {
        match can_i(&s, manager, &["delete", "configmaps", "-A"]).as_str() {
            "yes" => Ok(()),
            other => Err(other.to_string()),
        }
    });
    assert!(s.stop().unwrap().success());

    let s = Server::start(data, &[]).unwrap();
    let err = s
        .kubectl_err(&[
            "get",
            "clusterrolebinding",
            "k1s:kube-controller-manager:namespace-controller",
        ])
        .unwrap();
    assert!(err.contains("NotFound"), "{err}");
    assert_eq!(can_i(&s, manager, &["delete", "configmaps", "-A"]), "no");
    // The claimed one stays, and with it what it grants.
    s.kubectl_ok(&[
        "get",
        "clusterrolebinding",
        "k1s:kube-controller-manager:root-ca-cert-publisher",
    ])
    .unwrap();
    assert_eq!(
        can_i(&s, manager, &["update", "configmaps", "-n", "default"]),
        "yes"
    );
}
