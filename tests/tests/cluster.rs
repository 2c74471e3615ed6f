//! Policy and cluster configuration as kubectl users meet it: RBAC, disruption budgets, priority and storage classes, certificate signing requests, APIServices, limit ranges, quotas, volumes and claims.

use k1s_tests::Server;

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

/// A `kubectl get` table as rows of cells, cut at the header's column positions (cells may be
/// empty or hold spaces). Asserts the header is `headers`.
fn table(out: &str, headers: &[&str]) -> Vec<Vec<String>> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>().join(" "),
        headers.join(" "),
        "{out}"
    );
    let mut starts = Vec::new();
    let mut from = 0;
    for h in headers {
        let at = from + header[from..].find(h).unwrap();
        starts.push(at);
        from = at + h.len();
    }
    lines
        .map(|line| {
            (0..starts.len())
                .map(|i| {
                    let end = starts
                        .get(i + 1)
                        .copied()
                        .unwrap_or(line.len())
                        .min(line.len());
                    line.get(starts[i].min(end)..end)
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
                .collect()
        })
        .collect()
}

/// The row whose first cell is `name`, without the cells at `skip` (ages, timestamps).
fn row(rows: &[Vec<String>], name: &str, skip: &[usize]) -> Vec<String> {
    let row = rows
        .iter()
        .find(|r| r[0] == name)
        .unwrap_or_else(|| panic!("no row {name} in {rows:?}"));
    row.iter()
        .enumerate()
        .filter(|(i, _)| !skip.contains(i))
        .map(|(_, c)| c.clone())
        .collect()
}

const MANIFESTS: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: pod-reader
  namespace: default
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "watch", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
  namespace: default
subjects:
- kind: User
  name: jane
  apiGroup: rbac.authorization.k8s.io
- kind: ServiceAccount
  name: builder
  namespace: default
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: secret-reader
rules:
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "watch", "list"]
- nonResourceURLs: ["/healthz", "/healthz/*"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: monitoring
aggregationRule:
  clusterRoleSelectors:
  - matchLabels:
      rbac.example.com/aggregate-to-monitoring: "true"
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:read-secrets-global
subjects:
- kind: Group
  name: manager
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: ClusterRole
  name: secret-reader
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: zk-pdb
spec:
  minAvailable: 2
  selector:
    matchLabels:
      app: zookeeper
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web-pdb
spec:
  maxUnavailable: "25%"
  selector:
    matchLabels:
      app: web
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high-priority
value: 1000000
globalDefault: false
description: "This priority class should be used for XYZ service pods only."
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high-priority-nonpreempting
value: 1000000
preemptionPolicy: Never
globalDefault: false
description: "This priority class will not cause other pods to be preempted."
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
provisioner: ebs.csi.aws.com
parameters:
  type: gp3
reclaimPolicy: Retain
allowVolumeExpansion: true
---
apiVersion: v1
kind: LimitRange
metadata:
  name: cpu-resource-constraint
spec:
  limits:
  - default:
      cpu: 500m
    max:
      cpu: "1"
    min:
      cpu: 100m
    type: Container
---
apiVersion: v1
kind: ResourceQuota
metadata:
  name: compute-resources
spec:
  hard:
    requests.cpu: "1"
    requests.memory: 1Gi
    limits.cpu: "2"
    limits.memory: 2Gi
    pods: "10"
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: task-pv-volume
  labels:
    type: local
spec:
  storageClassName: manual
  capacity:
    storage: 10Gi
  accessModes:
    - ReadWriteOnce
  hostPath:
    path: "/mnt/data"
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: task-pv-claim
spec:
  storageClassName: manual
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 3Gi
"#;

/// A certificate signing request for CN=jane, O=devs (P-256), base64 as the API carries it.
const CSR: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlIWk1JR0FBZ0VBTUI0eERUQUxCZ05WQkFNTUJHcGhibVV4RFRBTEJnTlZCQW9NQkdSbGRuTXdXVEFUQmdjcQpoa2pPUFFJQkJnZ3Foa2pPUFFNQkJ3TkNBQVIxdkN4RHFOZDk3RHdxN25jcWJ2Q3MvNnNQUWttOEJoVFJXT2JKCisrRWptTmd0bjVxakg5QXlPbHpBb1B0OEJDTGQzV1FOV0h0aU1kZWd5VEFpYUNiSW9BQXdDZ1lJS29aSXpqMEUKQXdJRFNBQXdSUUlnYUZEcXFPWG8wdWRMYkNqMStQdzhRTXBCbTJ6L0lQcnpndVcvY2UvRGo5Y0NJUUQ5TTdYQwpjamlZZ3diVnQxbzkxNFRrWlZCVGZOZUNxQmhnRXdJcGZhd0NsZz09Ci0tLS0tRU5EIENFUlRJRklDQVRFIFJFUVVFU1QtLS0tLQo=";

#[test]
fn first_start_creates_system_priority_classes_and_local_apiservices() {
    let (_tmp, s) = server();
    let out = s
        .kubectl_ok(&["get", "priorityclasses", "-o", "wide"])
        .unwrap();
    let rows = table(
        &out,
        &["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
    );
    assert_eq!(
        row(&rows, "system-cluster-critical", &[3]),
        [
            "system-cluster-critical",
            "2000000000",
            "false",
            "PreemptLowerPriority"
        ]
    );
    assert_eq!(
        row(&rows, "system-node-critical", &[3]),
        [
            "system-node-critical",
            "2000001000",
            "false",
            "PreemptLowerPriority"
        ]
    );
    let description = s
        .kubectl_ok(&[
            "get",
            "pc",
            "system-node-critical",
            "-o",
            "jsonpath={.description}",
        ])
        .unwrap();
    assert_eq!(
        description,
        "Used for system critical pods that must not be moved from their current node."
    );

    // One local APIService per served group/version, named version.group.
    let out = s.kubectl_ok(&["get", "apiservices"]).unwrap();
    let rows = table(&out, &["NAME", "SERVICE", "AVAILABLE", "AGE"]);
    let versions = s.kubectl_ok(&["api-versions"]).unwrap();
    let mut expected: Vec<String> = versions
        .lines()
        .map(|gv| match gv.split_once('/') {
            Some((group, version)) => format!("{version}.{group}"),
            None => format!("{gv}."),
        })
        .collect();
    expected.sort();
    let mut names: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    names.sort();
    assert_eq!(names, expected);
    for r in &rows {
        assert_eq!(r[1..3], ["Local", "True"], "{out}");
    }
    let spec = s
        .kubectl_ok(&[
            "get",
            "apiservice",
            "v1.rbac.authorization.k8s.io",
            "-o",
            "jsonpath={.spec.group} {.spec.version} {.spec.groupPriorityMinimum} {.spec.versionPriority} {.spec.service} {.metadata.labels} {.status.conditions[0].reason}",
        ])
        .unwrap();
    assert_eq!(
        spec,
        r#"rbac.authorization.k8s.io v1 17000 15  {"kube-aggregator.kubernetes.io/automanaged":"onstart"} Local"#
    );
    let core = s
        .kubectl_ok(&[
            "get",
            "apiservice",
            "v1.",
            "-o",
            "jsonpath={.spec.groupPriorityMinimum}/{.spec.versionPriority} {.status.conditions[0].message}",
        ])
        .unwrap();
    assert_eq!(core, "18000/1 Local APIServices are always available");
}

#[test]
fn upstream_manifests_apply_idempotently_and_print_upstream_columns() {
    let (tmp, s) = server();
    let manifest = write(tmp.path(), "cluster.yaml", MANIFESTS);
    let first = s.kubectl_ok(&["apply", "-f", &manifest]).unwrap();
    assert_eq!(first.matches(" created\n").count(), 15, "{first}");
    let again = s.kubectl_ok(&["apply", "-f", &manifest]).unwrap();
    for line in again.lines() {
        // As upstream: a PDB's selector has patch strategy `replace`, so kubectl always sends
        // it; a limit range's `limits` is an atomic list into which the server defaulted a
        // `defaultRequest`. Neither patch changes what is stored (the generation stays 1).
        if line.starts_with("poddisruptionbudget.policy/") || line.starts_with("limitrange/") {
            assert!(line.ends_with(" configured"), "{again}");
        } else {
            assert!(line.ends_with(" unchanged"), "{again}");
        }
    }
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "pdb",
            "zk-pdb",
            "-o",
            "jsonpath={.metadata.generation}"
        ])
        .unwrap(),
        "1"
    );

    let out = s.kubectl_ok(&["get", "roles", "-o", "wide"]).unwrap();
    let rows = table(&out, &["NAME", "CREATED AT"]);
    assert_eq!(rows.len(), 1, "{out}");
    assert!(
        rows[0][1].ends_with('Z') && rows[0][1].contains('T'),
        "{out}"
    );

    let out = s
        .kubectl_ok(&["get", "rolebindings", "-o", "wide"])
        .unwrap();
    let rows = table(
        &out,
        &["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
    );
    assert_eq!(
        row(&rows, "read-pods", &[2]),
        [
            "read-pods",
            "Role/pod-reader",
            "jane",
            "",
            "default/builder"
        ]
    );
    let out = s.kubectl_ok(&["get", "rolebindings"]).unwrap();
    table(&out, &["NAME", "ROLE", "AGE"]);

    // The manifest's two, among upstream's bootstrap roles.
    let out = s.kubectl_ok(&["get", "clusterroles"]).unwrap();
    let rows = table(&out, &["NAME", "CREATED AT"]);
    for name in ["secret-reader", "monitoring", "cluster-admin"] {
        assert!(rows.iter().any(|r| r[0] == name), "{out}");
    }

    let out = s
        .kubectl_ok(&["get", "clusterrolebindings", "-o", "wide"])
        .unwrap();
    let rows = table(
        &out,
        &["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
    );
    assert_eq!(
        row(&rows, "system:read-secrets-global", &[2]),
        [
            "system:read-secrets-global",
            "ClusterRole/secret-reader",
            "",
            "manager",
            ""
        ]
    );
    // Defaulting kept the roleRef's API group; the aggregation rule was stored.
    let selector = s
        .kubectl_ok(&[
            "get",
            "clusterrole",
            "monitoring",
            "-o",
            "jsonpath={.aggregationRule.clusterRoleSelectors[0].matchLabels}",
        ])
        .unwrap();
    assert_eq!(
        selector,
        r#"{"rbac.example.com/aggregate-to-monitoring":"true"}"#
    );

    let out = s.kubectl_ok(&["get", "pdb", "-o", "wide"]).unwrap();
    let rows = table(
        &out,
        &[
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE",
        ],
    );
    assert_eq!(row(&rows, "zk-pdb", &[4]), ["zk-pdb", "2", "N/A", "0"]);
    assert_eq!(row(&rows, "web-pdb", &[4]), ["web-pdb", "N/A", "25%", "0"]);
    let status = s
        .kubectl_ok(&["get", "pdb", "zk-pdb", "-o", "jsonpath={.status}"])
        .unwrap();
    assert_eq!(
        status,
        r#"{"currentHealthy":0,"desiredHealthy":0,"disruptionsAllowed":0,"expectedPods":0}"#
    );

    let out = s.kubectl_ok(&["get", "pc", "-o", "wide"]).unwrap();
    let rows = table(
        &out,
        &["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
    );
    assert_eq!(
        row(&rows, "high-priority", &[3]),
        ["high-priority", "1000000", "false", "PreemptLowerPriority"]
    );
    assert_eq!(
        row(&rows, "high-priority-nonpreempting", &[3]),
        ["high-priority-nonpreempting", "1000000", "false", "Never"]
    );

    let out = s.kubectl_ok(&["get", "sc", "-o", "wide"]).unwrap();
    let rows = table(
        &out,
        &[
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE",
        ],
    );
    assert_eq!(
        row(&rows, "standard (default)", &[5]),
        [
            "standard (default)",
            "kubernetes.io/no-provisioner",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ]
    );
    assert_eq!(
        row(&rows, "fast", &[5]),
        ["fast", "ebs.csi.aws.com", "Retain", "Immediate", "true"]
    );

    let out = s.kubectl_ok(&["get", "limits", "-o", "wide"]).unwrap();
    let rows = table(&out, &["NAME", "CREATED AT"]);
    assert_eq!(rows[0][0], "cpu-resource-constraint");
    // A container limit's default request comes from its default, as upstream defaults it.
    let limit = s
        .kubectl_ok(&[
            "get",
            "limitrange",
            "cpu-resource-constraint",
            "-o",
            "jsonpath={.spec.limits[0].default.cpu} {.spec.limits[0].defaultRequest.cpu}",
        ])
        .unwrap();
    assert_eq!(limit, "500m 500m");

    // The status (and so REQUEST and LIMIT) is the quota controller's to fill.
    let filled = [
        "compute-resources",
        "pods: 0/10, requests.cpu: 0/1, requests.memory: 0/1Gi",
        "limits.cpu: 0/2, limits.memory: 0/2Gi",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = s.kubectl_ok(&["get", "quota", "-o", "wide"]).unwrap();
        let rows = table(&out, &["NAME", "REQUEST", "LIMIT", "AGE"]);
        let got = row(&rows, "compute-resources", &[3]);
        if got == filled {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the quota controller never filled the status: {got:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    s.kubectl_ok(&[
        "patch",
        "quota",
        "compute-resources",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"hard":{"requests.cpu":"1","pods":"10","limits.cpu":"2"},"used":{"pods":"3","requests.cpu":"500m"}}}"#,
    ])
    .unwrap();
    let out = s.kubectl_ok(&["get", "quota"]).unwrap();
    let rows = table(&out, &["NAME", "REQUEST", "LIMIT", "AGE"]);
    assert_eq!(
        row(&rows, "compute-resources", &[3]),
        [
            "compute-resources",
            "pods: 3/10, requests.cpu: 500m/1, requests.memory: 0/1Gi",
            "limits.cpu: 0/2, limits.memory: 0/2Gi"
        ]
    );

    let out = s.kubectl_ok(&["get", "pv", "-o", "wide"]).unwrap();
    let rows = table(
        &out,
        &[
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE",
            "VOLUMEMODE",
        ],
    );
    assert_eq!(
        row(&rows, "task-pv-volume", &[9]),
        [
            "task-pv-volume",
            "10Gi",
            "RWO",
            "Retain",
            "Pending",
            "",
            "manual",
            "<unset>",
            "",
            "Filesystem"
        ]
    );
    let out = s.kubectl_ok(&["get", "pv"]).unwrap();
    table(
        &out,
        &[
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE",
        ],
    );
    // The legacy `name` field label upstream keeps for volumes and claims.
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "pv",
            "--field-selector",
            "name=task-pv-volume",
            "-o",
            "name"
        ])
        .unwrap(),
        "persistentvolume/task-pv-volume\n"
    );

    let out = s.kubectl_ok(&["get", "pvc", "-o", "wide"]).unwrap();
    let rows = table(
        &out,
        &[
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE",
            "VOLUMEMODE",
        ],
    );
    assert_eq!(
        row(&rows, "task-pv-claim", &[7]),
        [
            "task-pv-claim",
            "Pending",
            "",
            "",
            "",
            "manual",
            "<unset>",
            "Filesystem"
        ]
    );
    // Bound through its status (the volume controller's job), a claim shows its volume.
    s.kubectl_ok(&[
        "patch",
        "pvc",
        "task-pv-claim",
        "--type=merge",
        "-p",
        r#"{"spec":{"volumeName":"task-pv-volume"}}"#,
    ])
    .unwrap();
    s.kubectl_ok(&[
        "patch",
        "pvc",
        "task-pv-claim",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Bound","capacity":{"storage":"10Gi"},"accessModes":["ReadWriteOnce"]}}"#,
    ])
    .unwrap();
    let out = s.kubectl_ok(&["get", "pvc"]).unwrap();
    let rows = table(
        &out,
        &[
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE",
        ],
    );
    assert_eq!(
        row(&rows, "task-pv-claim", &[7]),
        [
            "task-pv-claim",
            "Bound",
            "task-pv-volume",
            "10Gi",
            "RWO",
            "manual",
            "<unset>"
        ]
    );
}

#[test]
fn certificate_signing_requests_print_and_take_approval() {
    let (tmp, s) = server();
    let manifest = write(
        tmp.path(),
        "csr.yaml",
        &format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: jane\nspec:\n  request: {CSR}\n  signerName: kubernetes.io/kube-apiserver-client\n  expirationSeconds: 86400\n  username: jane\n  usages:\n  - client auth\n"
        ),
    );
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &manifest]).unwrap(),
        "certificatesigningrequest.certificates.k8s.io/jane created\n"
    );
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", &manifest]).unwrap(),
        "certificatesigningrequest.certificates.k8s.io/jane unchanged\n"
    );
    let headers = [
        "NAME",
        "AGE",
        "SIGNERNAME",
        "REQUESTOR",
        "REQUESTEDDURATION",
        "CONDITION",
    ];
    let out = s.kubectl_ok(&["get", "csr", "-o", "wide"]).unwrap();
    assert_eq!(
        row(&table(&out, &headers), "jane", &[1]),
        [
            "jane",
            "kubernetes.io/kube-apiserver-client",
            "jane",
            "24h",
            "Pending"
        ]
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "csr",
            "--field-selector",
            "spec.signerName=kubernetes.io/kube-apiserver-client",
            "-o",
            "name"
        ])
        .unwrap(),
        "certificatesigningrequest.certificates.k8s.io/jane\n"
    );

    assert_eq!(
        s.kubectl_ok(&["certificate", "approve", "jane"]).unwrap(),
        "certificatesigningrequest.certificates.k8s.io/jane approved\n"
    );
    let out = s.kubectl_ok(&["get", "csr"]).unwrap();
    assert_eq!(
        row(&table(&out, &headers), "jane", &[1]),
        [
            "jane",
            "kubernetes.io/kube-apiserver-client",
            "jane",
            "24h",
            "Approved"
        ]
    );
    let stamps = s
        .kubectl_ok(&[
            "get",
            "csr",
            "jane",
            "-o",
            "jsonpath={.status.conditions[0].type} {.status.conditions[0].reason} {.status.conditions[0].lastTransitionTime}",
        ])
        .unwrap();
    assert!(stamps.starts_with("Approved KubectlApprove 20"), "{stamps}");

    // Approved and Denied together, or an approval taken back: 422 as upstream.
    let path = "/apis/certificates.k8s.io/v1/certificatesigningrequests/jane/approval";
    let both = format!(
        r#"{{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{{"name":"jane"}},"spec":{{"request":"{CSR}","signerName":"kubernetes.io/kube-apiserver-client","usages":["client auth"]}},"status":{{"conditions":[{{"type":"Approved","status":"True"}},{{"type":"Denied","status":"True"}}]}}}}"#
    );
    let reply = put(&s, path, &both);
    assert!(reply.ends_with("\n422"), "{reply}");
    assert!(
        reply.contains(
            "status.conditions: Invalid value: []certificates.CertificateSigningRequestCondition{"
        ) && reply.contains("Approved and Denied conditions are mutually exclusive"),
        "{reply}"
    );
    let none = both.replace(
        r#"[{"type":"Approved","status":"True"},{"type":"Denied","status":"True"}]"#,
        "[]",
    );
    let reply = put(&s, path, &none);
    assert!(
        reply.contains(r#"status.conditions: Forbidden: updates may not remove a condition of type \"Approved\""#)
            && reply.ends_with("\n422"),
        "{reply}"
    );
    // The spec is fixed once created: a changed spec through the main resource is ignored.
    s.kubectl_ok(&[
        "patch",
        "csr",
        "jane",
        "--type=merge",
        "-p",
        r#"{"spec":{"signerName":"example.com/other"}}"#,
    ])
    .unwrap();
    assert_eq!(
        s.kubectl_ok(&["get", "csr", "jane", "-o", "jsonpath={.spec.signerName}"])
            .unwrap(),
        "kubernetes.io/kube-apiserver-client"
    );
}

/// PUT `body` to `path` as the admin; the reply body, a newline and the status code.
fn put(s: &Server, path: &str, body: &str) -> String {
    let tls = s.data_dir.join("tls");
    let out = std::process::Command::new("curl")
        .args(["-sS", "-X", "PUT", "-w", "\n%{http_code}"])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ])
        .arg("--cacert")
        .arg(tls.join("ca.crt"))
        .arg("--cert")
        .arg(tls.join("admin.crt"))
        .arg("--key")
        .arg(tls.join("admin.key"))
        .arg(format!("{}{path}", s.url()))
        .output()
        .expect("running curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl create -f` of one manifest expected to fail; kubectl's stderr.
fn rejected(s: &Server, dir: &std::path::Path, manifest: &str) -> String {
    let path = write(dir, "bad.yaml", manifest);
    s.kubectl_err(&["create", "-f", &path]).unwrap()
}

#[test]
fn invalid_objects_get_upstream_422s() {
    let (tmp, s) = server();
    let dir = tmp.path();
    let cases: &[(&str, &[&str])] = &[
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: no-verbs}\nrules:\n- apiGroups: [\"\"]\n  resources: [pods]\n",
            &[
                r#"The Role "no-verbs" is invalid: rules[0].verbs: Required value: verbs must contain at least one value"#,
            ],
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: urls}\nrules:\n- nonResourceURLs: [/healthz]\n  verbs: [get]\n",
            &[
                r#"rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs"#,
            ],
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: no-groups}\nrules:\n- verbs: [get]\n",
            &[
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[0].resources: Required value: resource rules must supply at least one resource",
            ],
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: bad-ref}\nroleRef: {kind: Foo, name: x, apiGroup: rbac.authorization.k8s.io}\n",
            &[r#"roleRef.kind: Unsupported value: "Foo": supported values: "Role", "ClusterRole""#],
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: sa-without-namespace}\nroleRef: {kind: ClusterRole, name: view, apiGroup: rbac.authorization.k8s.io}\nsubjects:\n- {kind: ServiceAccount, name: builder}\n",
            &["subjects[0].namespace: Required value"],
        ),
        (
            "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: both}\nspec: {minAvailable: 1, maxUnavailable: 1}\n",
            &[
                "spec: Invalid value: policy.PodDisruptionBudgetSpec{",
                "minAvailable and maxUnavailable cannot be both set",
            ],
        ),
        (
            "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: percent}\nspec: {minAvailable: \"50\", maxUnavailable: \"150%\"}\n",
            &[
                r#"spec.minAvailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"50"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"#,
                r#"spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be greater than 100%"#,
            ],
        ),
        (
            "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: too-high}\nvalue: 2000000000\npreemptionPolicy: Sometimes\n",
            &[
                "value: Forbidden: maximum allowed value of a user defined priority is 1000000000",
                r#"preemptionPolicy: Unsupported value: "Sometimes": supported values: "PreemptLowerPriority", "Never""#,
            ],
        ),
        (
            "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: system-mine}\nvalue: 10\n",
            &[
                "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class",
            ],
        ),
        (
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: no-provisioner}\nreclaimPolicy: Recycle\n",
            &[
                "provisioner: Required value",
                r#"reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain""#,
            ],
        ),
        (
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {name: empty}\nspec:\n  request: aGVsbG8=\n",
            &[
                "spec.request: Invalid value: []byte{0x68, 0x65, 0x6c, 0x6c, 0x6f}: PEM block type must be CERTIFICATE REQUEST",
                "spec.usages: Required value",
                "spec.signerName: Required value",
            ],
        ),
        (
            "apiVersion: v1\nkind: LimitRange\nmetadata: {name: inverted}\nspec:\n  limits:\n  - type: Container\n    min: {cpu: \"2\"}\n    max: {cpu: \"1\"}\n",
            &[
                r#"spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1"#,
            ],
        ),
        (
            "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: odd}\nspec:\n  hard: {foo: \"1\", pods: \"1.5\"}\n",
            &[
                r#"spec.hard[foo]: Invalid value: "foo": must be a standard resource for quota"#,
                r#"spec.hard[pods]: Invalid value: "1.5": must be an integer"#,
            ],
        ),
        (
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {name: nothing}\nspec:\n  accessModes: [ReadWriteSometimes]\n",
            &[
                r#"spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod""#,
                "spec.capacity: Required value",
                "spec: Required value: must specify a volume type",
            ],
        ),
        (
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: nothing}\nspec: {}\n",
            &[
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
            ],
        ),
        (
            "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1.wrong}\nspec: {group: example.com, version: v1, groupPriorityMinimum: 100, versionPriority: 100, service: {namespace: default, name: api}}\n",
            &[
                r#"metadata.name: Invalid value: "v1.wrong": must be `spec.version+"."+spec.group`: "v1.example.com""#,
            ],
        ),
    ];
    for (manifest, wanted) in cases {
        let err = rejected(&s, dir, manifest);
        for w in *wanted {
            assert!(err.contains(w), "missing {w:?} in\n{err}");
        }
    }

    // The status code and reason, as a client sees them.
    let reply = s.curl(
        "application/json",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"r"},"rules":[{"apiGroups":[""],"resources":["pods"]}]}"#,
    );
    assert!(
        reply.ends_with("\n422")
            && reply.contains(r#""reason":"Invalid""#)
            && reply.contains(r#""message":"Role.rbac.authorization.k8s.io \"r\" is invalid: rules[0].verbs: Required value: verbs must contain at least one value""#),
        "{reply}"
    );

    // Only one priority class may be the global default: upstream's admission answers 403.
    let default = "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: NAME}\nvalue: 100\nglobalDefault: true\n";
    let path = write(dir, "first.yaml", &default.replace("NAME", "first-default"));
    s.kubectl_ok(&["create", "-f", &path]).unwrap();
    let err = rejected(&s, dir, &default.replace("NAME", "second-default"));
    assert!(
        err.contains("Error from server (Forbidden)")
            && err.contains(r#"priorityclasses.scheduling.k8s.io "second-default" is forbidden: PriorityClass first-default is marked as default. Only one default can exist"#),
        "{err}"
    );
    // Names with a colon are valid RBAC names (path segments), as upstream's system roles use.
    let path = write(
        dir,
        "colon.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: \"example:aggregate-to-view\"}\nrules: []\n",
    );
    s.kubectl_ok(&["create", "-f", &path]).unwrap();
}

#[test]
fn immutable_fields_are_kept_as_upstream_keeps_them() {
    let (tmp, s) = server();
    let manifest = write(tmp.path(), "cluster.yaml", MANIFESTS);
    s.kubectl_ok(&["apply", "-f", &manifest]).unwrap();
    let patch = |args: &[&str]| {
        let mut all = vec!["patch"];
        all.extend_from_slice(args);
        s.kubectl_err(&all).unwrap()
    };

    let err = patch(&[
        "rolebinding",
        "read-pods",
        "--type=merge",
        "-p",
        r#"{"roleRef":{"name":"other"}}"#,
    ]);
    assert!(
        err.contains(r#"The RoleBinding "read-pods" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"other"}: cannot change roleRef"#),
        "{err}"
    );
    let err = patch(&[
        "clusterrolebinding",
        "system:read-secrets-global",
        "--type=merge",
        "-p",
        r#"{"roleRef":{"kind":"Role"}}"#,
    ]);
    assert!(
        err.contains(r#"roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#)
            && err.contains("cannot change roleRef"),
        "{err}"
    );
    // Subjects may change.
    s.kubectl_ok(&[
        "patch",
        "rolebinding",
        "read-pods",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/subjects/-","value":{"kind":"Group","name":"ops"}}]"#,
    ])
    .unwrap();
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "rolebinding",
            "read-pods",
            "-o",
            "jsonpath={.subjects[2].apiGroup}"
        ])
        .unwrap(),
        "rbac.authorization.k8s.io"
    );

    let err = patch(&[
        "sc",
        "fast",
        "--type=merge",
        "-p",
        r#"{"provisioner":"x.example.com","parameters":{"type":"io2"},"reclaimPolicy":"Delete","volumeBindingMode":"WaitForFirstConsumer"}"#,
    ]);
    for w in [
        "parameters: Forbidden: updates to parameters are forbidden.",
        "provisioner: Forbidden: updates to provisioner are forbidden.",
        "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
        r#"volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable"#,
    ] {
        assert!(err.contains(w), "missing {w:?} in\n{err}");
    }
    s.kubectl_ok(&[
        "patch",
        "sc",
        "fast",
        "--type=merge",
        "-p",
        r#"{"allowVolumeExpansion":false}"#,
    ])
    .unwrap();

    let err = patch(&[
        "pc",
        "high-priority",
        "--type=merge",
        "-p",
        r#"{"value":5,"preemptionPolicy":"Never"}"#,
    ]);
    assert!(
        err.contains("value: Forbidden: may not be changed in an update.")
            && err.contains(r#"preemptionPolicy: Invalid value: "Never": field is immutable"#),
        "{err}"
    );
    s.kubectl_ok(&[
        "patch",
        "pc",
        "high-priority",
        "--type=merge",
        "-p",
        r#"{"description":"changed"}"#,
    ])
    .unwrap();

    let err = patch(&[
        "pv",
        "task-pv-volume",
        "--type=merge",
        "-p",
        r#"{"spec":{"hostPath":{"path":"/elsewhere"}}}"#,
    ]);
    assert!(
        err.contains("spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"),
        "{err}"
    );
    let err = patch(&[
        "pvc",
        "task-pv-claim",
        "--type=merge",
        "-p",
        r#"{"spec":{"accessModes":["ReadWriteMany"]}}"#,
    ]);
    assert!(
        err.contains("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"),
        "{err}"
    );

    // A changed budget is a new generation; a status write is not.
    s.kubectl_ok(&[
        "patch",
        "pdb",
        "zk-pdb",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":3}}"#,
    ])
    .unwrap();
    s.kubectl_ok(&[
        "patch",
        "pdb",
        "zk-pdb",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"disruptionsAllowed":1,"observedGeneration":2}}"#,
    ])
    .unwrap();
    let out = s
        .kubectl_ok(&[
            "get",
            "pdb",
            "zk-pdb",
            "-o",
            "jsonpath={.metadata.generation} {.spec.minAvailable} {.status.disruptionsAllowed}",
        ])
        .unwrap();
    assert_eq!(out, "2 3 1");
    let err = patch(&[
        "pdb",
        "zk-pdb",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"disruptionsAllowed":-1}}"#,
    ]);
    assert!(
        err.contains(
            "status.disruptionsAllowed: Invalid value: -1: must be greater than or equal to 0"
        ),
        "{err}"
    );
}

/// `kubectl get -o yaml` of an object without what differs between two equal objects made
/// separately (uid, timestamps, resourceVersion), with `rename` applied.
fn comparable(s: &Server, what: &[&str], rename: (&str, &str)) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-o", "yaml"]);
    s.kubectl_ok(&args)
        .unwrap()
        .lines()
        .filter(|l| {
            ![
                "  uid:",
                "  creationTimestamp:",
                "  resourceVersion:",
                "  namespace:",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(|l| l.replace(rename.0, rename.1))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn kubectl_create_generators_make_what_the_yaml_makes() {
    // kubectl's typed generators send protobuf; each object must equal its YAML equivalent.
    let (tmp, s) = server();
    s.kubectl_ok(&["create", "namespace", "yaml"]).unwrap();
    let generated: &[&[&str]] = &[
        &[
            "create",
            "role",
            "reader",
            "--verb=get,list",
            "--resource=pods,deployments.apps",
        ],
        &[
            "create",
            "clusterrole",
            "logs",
            "--verb=get",
            "--non-resource-url=/logs/*",
        ],
        &[
            "create",
            "rolebinding",
            "reader",
            "--role=reader",
            "--user=alice",
            "--group=devs",
            "--serviceaccount=default:builder",
        ],
        &[
            "create",
            "clusterrolebinding",
            "logs",
            "--clusterrole=logs",
            "--user=bob",
        ],
        &["create", "quota", "small", "--hard=cpu=1,memory=1G,pods=2"],
        &[
            "create",
            "priorityclass",
            "batch",
            "--value=1000",
            "--description=batch jobs",
        ],
        &[
            "create",
            "poddisruptionbudget",
            "web",
            "--selector=app=web",
            "--min-available=50%",
        ],
    ];
    for args in generated {
        let out = s.kubectl().args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed{}:\n{stderr}",
            if stderr.contains("415") || stderr.contains("UnsupportedMediaType") {
                " (protobuf bodies for this kind are not decoded yet)"
            } else {
                ""
            }
        );
    }
    let yaml = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: yaml}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: logs-yaml}
rules:
- nonResourceURLs: [/logs/*]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: yaml}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}
- {kind: ServiceAccount, name: builder, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: logs-yaml}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: logs}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: small, namespace: yaml}
spec:
  hard: {cpu: "1", memory: 1G, pods: "2"}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: batch-yaml}
value: 1000
description: batch jobs
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: yaml}
spec:
  minAvailable: 50%
  selector:
    matchLabels: {app: web}
"#;
    let path = write(tmp.path(), "generated.yaml", yaml);
    s.kubectl_ok(&["create", "-f", &path]).unwrap();
    for (kind, name, cluster) in [
        ("role", "reader", false),
        ("clusterrole", "logs", true),
        ("rolebinding", "reader", false),
        ("clusterrolebinding", "logs", true),
        ("quota", "small", false),
        ("priorityclass", "batch", true),
        ("pdb", "web", false),
    ] {
        let yaml_name = format!("{name}-yaml");
        let (made, from_yaml) = if cluster {
            (
                comparable(&s, &[kind, name], ("", "")),
                comparable(&s, &[kind, &yaml_name], (&yaml_name, name)),
            )
        } else {
            (
                comparable(&s, &[kind, name], ("", "")),
                comparable(&s, &[kind, name, "-n", "yaml"], ("", "")),
            )
        };
        assert_eq!(made, from_yaml, "{kind}/{name}");
    }
}
