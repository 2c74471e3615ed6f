//! Admission as kubectl users meet it: each built-in plugin mutating a pod (seen with jsonpath) or refusing a request with upstream's message, and PodSecurity enforcing and warning at each level.

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

/// A namespace with its `default` service account (which the service account controller also
/// creates; whichever comes second finds it there).
fn namespace(s: &Server, name: &str) {
    s.kubectl_ok(&["create", "namespace", name]).unwrap();
    let _ = s
        .kubectl()
        .args(["create", "serviceaccount", "default", "-n", name])
        .output();
}

/// kubectl's stdout and stderr, and whether it succeeded.
fn kubectl(s: &Server, args: &[&str]) -> (bool, String, String) {
    let out = s.kubectl().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn jsonpath(s: &Server, ns: &str, pod: &str, path: &str) -> String {
    s.kubectl_ok(&[
        "get",
        "pod",
        pod,
        "-n",
        ns,
        "-o",
        &format!("jsonpath={path}"),
    ])
    .unwrap()
}

#[test]
fn namespace_lifecycle_protects_system_namespaces_and_missing_ones() {
    let (_tmp, s) = server();
    for ns in ["default", "kube-system", "kube-public"] {
        let err = s.kubectl_err(&["delete", "namespace", ns]).unwrap();
        assert!(
            err.contains(&format!(
                "namespaces \"{ns}\" is forbidden: this namespace may not be deleted"
            )),
            "{err}"
        );
    }
    let err = s
        .kubectl_err(&["create", "configmap", "c", "-n", "nowhere"])
        .unwrap();
    assert!(err.contains("namespaces \"nowhere\" not found"), "{err}");
}

#[test]
fn service_account_defaults_and_mounts_the_token_volume() {
    let (tmp, s) = server();
    namespace(&s, "team");
    s.kubectl_ok(&["run", "web", "--image=nginx", "-n", "team"])
        .unwrap();
    assert_eq!(
        jsonpath(&s, "team", "web", "{.spec.serviceAccountName}"),
        "default"
    );
    let volume = jsonpath(&s, "team", "web", "{.spec.volumes[0].name}");
    assert!(volume.starts_with("kube-api-access-"), "{volume}");
    assert_eq!(volume.len(), "kube-api-access-".len() + 5);
    assert_eq!(
        jsonpath(
            &s,
            "team",
            "web",
            "{.spec.containers[0].volumeMounts[0].mountPath} {.spec.containers[0].volumeMounts[0].readOnly} {.spec.containers[0].volumeMounts[0].name}"
        ),
        format!("/var/run/secrets/kubernetes.io/serviceaccount true {volume}")
    );
    assert_eq!(
        jsonpath(
            &s,
            "team",
            "web",
            "{.spec.volumes[0].projected.sources[0].serviceAccountToken.path} {.spec.volumes[0].projected.sources[1].configMap.name} {.spec.volumes[0].projected.sources[2].downwardAPI.items[0].fieldRef.fieldPath}"
        ),
        "token kube-root-ca.crt metadata.namespace"
    );

    let ghost = write(
        tmp.path(),
        "ghost.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ghostly\n  namespace: team\nspec:\n  serviceAccountName: ghost\n  containers:\n  - name: c\n    image: nginx\n",
    );
    let err = s.kubectl_err(&["apply", "-f", &ghost]).unwrap();
    assert!(
        err.contains(
            "pods \"ghostly\" is forbidden: error looking up service account team/ghost: serviceaccount \"ghost\" not found"
        ),
        "{err}"
    );

    // In a brand-new namespace the service account controller creates `default` (the plugin
    // waits a little for it, as upstream's does).
    s.kubectl_ok(&["create", "namespace", "fresh"]).unwrap();
    s.kubectl_ok(&["run", "first", "--image=nginx", "-n", "fresh"])
        .unwrap();
    let volume = jsonpath(&s, "fresh", "first", "{.spec.volumes[0].name}");
    assert!(volume.starts_with("kube-api-access-"), "{volume}");

    // No token when the pod opts out.
    let quiet = write(
        tmp.path(),
        "quiet.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: quiet\n  namespace: team\nspec:\n  automountServiceAccountToken: false\n  containers:\n  - name: c\n    image: nginx\n",
    );
    s.kubectl_ok(&["apply", "-f", &quiet]).unwrap();
    assert_eq!(jsonpath(&s, "team", "quiet", "{.spec.volumes}"), "");
}

#[test]
fn limit_ranger_defaults_resources_and_enforces_bounds() {
    let (tmp, s) = server();
    namespace(&s, "lr");
    let range = write(
        tmp.path(),
        "range.yaml",
        r#"apiVersion: v1
kind: LimitRange
metadata:
  name: limits
  namespace: lr
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 250m, memory: 128Mi}
    max: {cpu: "1", memory: 1Gi}
    min: {cpu: 100m}
"#,
    );
    s.kubectl_ok(&["apply", "-f", &range]).unwrap();
    s.kubectl_ok(&["run", "web", "--image=nginx", "-n", "lr"])
        .unwrap();
    assert_eq!(
        jsonpath(
            &s,
            "lr",
            "web",
            "{.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.requests.memory} {.spec.containers[0].resources.limits.cpu} {.spec.containers[0].resources.limits.memory} {.status.qosClass}"
        ),
        "250m 128Mi 500m 256Mi Burstable"
    );
    assert_eq!(
        jsonpath(
            &s,
            "lr",
            "web",
            "{.metadata.annotations.kubernetes\\.io/limit-ranger}"
        ),
        "LimitRanger plugin set: cpu, memory request for container web; cpu, memory limit for container web"
    );

    let big = write(
        tmp.path(),
        "big.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\n  namespace: lr\nspec:\n  containers:\n  - name: c\n    image: nginx\n    resources:\n      limits: {cpu: \"2\"}\n      requests: {cpu: \"1\"}\n",
    );
    let err = s.kubectl_err(&["apply", "-f", &big]).unwrap();
    assert!(
        err.contains(
            "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{err}"
    );
}

#[test]
fn priority_comes_from_the_priority_class() {
    let (tmp, s) = server();
    namespace(&s, "prio");
    s.kubectl_ok(&["run", "plain", "--image=nginx", "-n", "prio"])
        .unwrap();
    assert_eq!(
        jsonpath(
            &s,
            "prio",
            "plain",
            "{.spec.priority} {.spec.preemptionPolicy}"
        ),
        "0 PreemptLowerPriority"
    );
    let critical = write(
        tmp.path(),
        "critical.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: critical\n  namespace: prio\nspec:\n  priorityClassName: system-node-critical\n  containers:\n  - name: c\n    image: nginx\n",
    );
    s.kubectl_ok(&["apply", "-f", &critical]).unwrap();
    assert_eq!(
        jsonpath(&s, "prio", "critical", "{.spec.priority}"),
        "2000001000"
    );

    let unknown = write(
        tmp.path(),
        "unknown.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: unknown\n  namespace: prio\nspec:\n  priorityClassName: nope\n  containers:\n  - name: c\n    image: nginx\n",
    );
    let err = s.kubectl_err(&["apply", "-f", &unknown]).unwrap();
    assert!(
        err.contains("pods \"unknown\" is forbidden: no PriorityClass with name nope was found"),
        "{err}"
    );

    // A global default applies to pods without a class, and there can be only one.
    s.kubectl_ok(&[
        "create",
        "priorityclass",
        "batch",
        "--value=100",
        "--global-default",
        "--preemption-policy=Never",
    ])
    .unwrap();
    s.kubectl_ok(&["run", "later", "--image=nginx", "-n", "prio"])
        .unwrap();
    assert_eq!(
        jsonpath(
            &s,
            "prio",
            "later",
            "{.spec.priorityClassName} {.spec.priority} {.spec.preemptionPolicy}"
        ),
        "batch 100 Never"
    );
    let err = s
        .kubectl_err(&[
            "create",
            "priorityclass",
            "other",
            "--value=5",
            "--global-default",
        ])
        .unwrap();
    assert!(
        err.contains("priorityclasses.scheduling.k8s.io \"other\" is forbidden: PriorityClass batch is marked as default. Only one default can exist"),
        "{err}"
    );
}

#[test]
fn default_toleration_seconds() {
    let (_tmp, s) = server();
    namespace(&s, "tol");
    s.kubectl_ok(&["run", "web", "--image=nginx", "-n", "tol"])
        .unwrap();
    assert_eq!(
        jsonpath(
            &s,
            "tol",
            "web",
            "{range .spec.tolerations[*]}{.key}:{.operator}:{.effect}:{.tolerationSeconds} {end}"
        ),
        "node.kubernetes.io/not-ready:Exists:NoExecute:300 node.kubernetes.io/unreachable:Exists:NoExecute:300 "
    );
}

const RESTRICTED_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: NAME
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: c
    image: nginx
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
"#;

const PRIVILEGED_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: NAME
spec:
  containers:
  - name: c
    image: nginx
    securityContext:
      privileged: true
"#;

#[test]
fn pod_security_enforce_at_each_level() {
    let (tmp, s) = server();
    let restricted = write(tmp.path(), "restricted.yaml", RESTRICTED_POD);
    let privileged = write(tmp.path(), "privileged.yaml", PRIVILEGED_POD);
    let pod = |path: &str, name: &str| -> String {
        let text = std::fs::read_to_string(path).unwrap().replace("NAME", name);
        write(tmp.path(), &format!("{name}.yaml"), &text)
    };
    for level in ["privileged", "baseline", "restricted"] {
        namespace(&s, level);
        s.kubectl_ok(&[
            "label",
            "namespace",
            level,
            &format!("pod-security.kubernetes.io/enforce={level}"),
        ])
        .unwrap();
    }

    // privileged: anything goes.
    s.kubectl_ok(&["apply", "-n", "privileged", "-f", &pod(&privileged, "p1")])
        .unwrap();

    // baseline: a privileged container is refused, a plain pod is not.
    let err = s
        .kubectl_err(&["apply", "-n", "baseline", "-f", &pod(&privileged, "p2")])
        .unwrap();
    assert!(
        err.contains("pods \"p2\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"),
        "{err}"
    );
    s.kubectl_ok(&["run", "plain", "--image=nginx", "-n", "baseline"])
        .unwrap();

    // restricted: a plain pod fails four checks; a hardened one (with its token volume) passes.
    let err = s
        .kubectl_err(&["run", "x", "--image=nginx", "-n", "restricted"])
        .unwrap();
    assert!(
        err.contains("pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"x\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"x\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"x\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"x\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"),
        "{err}"
    );
    s.kubectl_ok(&["apply", "-n", "restricted", "-f", &pod(&restricted, "ok")])
        .unwrap();

    // Pinned versions: before v1.22 restricted did not ask to drop capabilities.
    s.kubectl_ok(&[
        "label",
        "namespace",
        "restricted",
        "pod-security.kubernetes.io/enforce-version=v1.21",
    ])
    .unwrap();
    let err = s
        .kubectl_err(&["run", "y", "--image=nginx", "-n", "restricted"])
        .unwrap();
    assert!(err.contains("\"restricted:v1.21\""), "{err}");
    assert!(!err.contains("unrestricted capabilities"), "{err}");

    // Labels are validated.
    let err = s
        .kubectl_err(&[
            "label",
            "namespace",
            "baseline",
            "--overwrite",
            "pod-security.kubernetes.io/enforce=strict",
        ])
        .unwrap();
    assert!(
        err.contains("metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"),
        "{err}"
    );
}

#[test]
fn pod_security_warns_at_each_level() {
    let (tmp, s) = server();
    let privileged = write(
        tmp.path(),
        "privileged.yaml",
        PRIVILEGED_POD.replace("NAME", "priv").as_str(),
    );
    for level in ["privileged", "baseline", "restricted"] {
        let ns = format!("warn-{level}");
        namespace(&s, &ns);
        s.kubectl_ok(&[
            "label",
            "namespace",
            &ns,
            &format!("pod-security.kubernetes.io/warn={level}"),
        ])
        .unwrap();
    }
    let (ok, _, stderr) = kubectl(
        &s,
        &["run", "web", "--image=nginx", "-n", "warn-privileged"],
    );
    assert!(ok && !stderr.contains("Warning"), "{stderr}");
    let (ok, _, stderr) = kubectl(&s, &["apply", "-n", "warn-baseline", "-f", &privileged]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("Warning: would violate PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"),
        "{stderr}"
    );
    let (ok, _, stderr) = kubectl(
        &s,
        &["run", "web", "--image=nginx", "-n", "warn-restricted"],
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"web\" must set securityContext.allowPrivilegeEscalation=false)"),
        "{stderr}"
    );
    // Workloads are warned about their pod template, never refused.
    let (ok, _, stderr) = kubectl(
        &s,
        &[
            "create",
            "deployment",
            "app",
            "--image=nginx",
            "-n",
            "warn-restricted",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("Warning: would violate PodSecurity \"restricted:latest\""),
        "{stderr}"
    );
    // Enforcing a level existing pods break warns about them.
    let (ok, _, stderr) = kubectl(
        &s,
        &[
            "label",
            "namespace",
            "warn-baseline",
            "pod-security.kubernetes.io/enforce=baseline",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("Warning: existing pods in namespace \"warn-baseline\" violate the new PodSecurity enforce level \"baseline:latest\""),
        "{stderr}"
    );
    assert!(stderr.contains("Warning: priv: privileged"), "{stderr}");
}

#[test]
fn resource_quota_charges_creates_and_refuses_over_quota() {
    let (_tmp, s) = server();
    namespace(&s, "q");
    s.kubectl_ok(&["create", "quota", "small", "--hard=pods=1", "-n", "q"])
        .unwrap();
    // What the quota controller writes once it has counted (done here so the test does not
    // wait for it; it counts the same: no pods yet).
    s.kubectl_ok(&[
        "patch",
        "quota",
        "small",
        "-n",
        "q",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"hard":{"pods":"1"},"used":{"pods":"0"}}}"#,
    ])
    .unwrap();
    // A dry run is checked but not charged.
    s.kubectl_ok(&["run", "dry", "--image=nginx", "-n", "q", "--dry-run=server"])
        .unwrap();
    s.kubectl_ok(&["run", "one", "--image=nginx", "-n", "q"])
        .unwrap();
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "quota",
            "small",
            "-n",
            "q",
            "-o",
            "jsonpath={.status.used.pods}"
        ])
        .unwrap(),
        "1"
    );
    let err = s
        .kubectl_err(&["run", "two", "--image=nginx", "-n", "q"])
        .unwrap();
    assert!(
        err.contains(
            "pods \"two\" is forbidden: exceeded quota: small, requested: pods=1, used: pods=1, limited: pods=1"
        ),
        "{err}"
    );
}

/// A base64 PEM certificate request for `subject` (openssl, a new EC key in `dir`).
fn certificate_request(dir: &std::path::Path, subject: &str) -> String {
    use base64::Engine;
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
        ])
        .arg(dir.join("key.pem"))
        .args(["-subj", subject])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    base64::engine::general_purpose::STANDARD.encode(out.stdout)
}

/// A CertificateSigningRequest manifest for `signer`, written to `dir`.
fn csr_manifest(dir: &std::path::Path, name: &str, signer: &str, request: &str) -> String {
    write(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  signerName: {signer}\n  usages: [client auth]\n  request: {request}\n"
        ),
    )
}

#[test]
fn certificate_requests_may_not_ask_the_client_signer_for_system_masters() {
    let (tmp, s) = server();
    let client = "kubernetes.io/kube-apiserver-client";
    let root = certificate_request(tmp.path(), "/CN=mallory/O=system:masters");
    let err = s
        .kubectl_err(&[
            "apply",
            "-f",
            &csr_manifest(tmp.path(), "root", client, &root),
        ])
        .unwrap();
    assert!(
        err.contains("certificatesigningrequests.certificates.k8s.io \"root\" is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"),
        "{err}"
    );
    let dev = certificate_request(tmp.path(), "/CN=alice/O=dev");
    s.kubectl_ok(&[
        "apply",
        "-f",
        &csr_manifest(tmp.path(), "dev", client, &dev),
    ])
    .unwrap();
}

/// Run `args` until it succeeds (RBAC changes reach the authorizer through a watch).
fn eventually_ok(s: &Server, args: &[&str]) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match s.kubectl_ok(args) {
            Ok(out) => return out,
            Err(e) if std::time::Instant::now() > deadline => panic!("{e}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

#[test]
fn approving_and_signing_certificate_requests_need_their_signer() {
    let (tmp, s) = server();
    for name in ["x", "other"] {
        let request = certificate_request(tmp.path(), &format!("/CN={name}"));
        s.kubectl_ok(&[
            "apply",
            "-f",
            &csr_manifest(tmp.path(), name, "example.com/foo", &request),
        ])
        .unwrap();
    }
    // bob may read requests and write their approval and status, but holds no signer.
    let handler = write(
        tmp.path(),
        "handler.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: csr-handler\nrules:\n- apiGroups: [certificates.k8s.io]\n  resources: [certificatesigningrequests]\n  verbs: [get, list, watch]\n- apiGroups: [certificates.k8s.io]\n  resources: [certificatesigningrequests/approval, certificatesigningrequests/status]\n  verbs: [update]\n",
    );
    s.kubectl_ok(&["apply", "-f", &handler]).unwrap();
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "bob-csr-handler",
        "--clusterrole=csr-handler",
        "--user=bob",
    ])
    .unwrap();
    let want = "certificatesigningrequests.certificates.k8s.io \"x\" is forbidden: user not permitted to approve requests with signerName \"example.com/foo\"";
    // Until bob's binding arrives the request filter refuses instead; then admission does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let err = s
            .kubectl_err(&["certificate", "approve", "x", "--as", "bob"])
            .unwrap();
        if err.contains(want) {
            break;
        }
        assert!(
            err.contains("cannot") && std::time::Instant::now() < deadline,
            "{err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // `approve` on every example.com signer.
    let approver = write(
        tmp.path(),
        "approver.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: example-approver\nrules:\n- apiGroups: [certificates.k8s.io]\n  resources: [signers]\n  resourceNames: [example.com/*]\n  verbs: [approve]\n",
    );
    s.kubectl_ok(&["apply", "-f", &approver]).unwrap();
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "bob-example-approver",
        "--clusterrole=example-approver",
        "--user=bob",
    ])
    .unwrap();
    eventually_ok(&s, &["certificate", "approve", "x", "--as", "bob"]);
    let condition = |name: &str| {
        s.kubectl_ok(&[
            "get",
            "csr",
            name,
            "-o",
            "jsonpath={.status.conditions[0].type}",
        ])
        .unwrap()
    };
    assert_eq!(condition("x"), "Approved");
    // The cluster admin (system:masters) holds every signer.
    s.kubectl_ok(&["certificate", "approve", "other"]).unwrap();
    assert_eq!(condition("other"), "Approved");

    // Issuing the certificate through `status` needs `sign`.
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=x",
            "-keyout",
        ])
        .arg(tmp.path().join("cert-key.pem"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let certificate = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(out.stdout)
    };
    let mut csr: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "csr", "x", "-o", "json"]).unwrap()).unwrap();
    csr["status"]["certificate"] = certificate.clone().into();
    let issued = write(tmp.path(), "issued.json", &csr.to_string());
    let status = [
        "replace",
        "--raw",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests/x/status",
        "-f",
        &issued,
        "--as",
        "bob",
    ];
    let err = s.kubectl_err(&status).unwrap();
    assert!(
        err.contains("certificatesigningrequests.certificates.k8s.io \"x\" is forbidden: user not permitted to sign requests with signerName \"example.com/foo\""),
        "{err}"
    );
    let signer = write(
        tmp.path(),
        "signer.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: example-signer\nrules:\n- apiGroups: [certificates.k8s.io]\n  resources: [signers]\n  resourceNames: [example.com/foo]\n  verbs: [sign]\n",
    );
    s.kubectl_ok(&["apply", "-f", &signer]).unwrap();
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "bob-example-signer",
        "--clusterrole=example-signer",
        "--user=bob",
    ])
    .unwrap();
    eventually_ok(&s, &status);
    let issued = s
        .kubectl_ok(&["get", "csr", "x", "-o", "jsonpath={.status.certificate}"])
        .unwrap();
    assert_eq!(issued, certificate);
}
