//! Authentication and authorization as kubectl users meet them: certificate and token identities, RBAC bindings and their limits, `auth can-i` and `auth whoami`, impersonation, escalation prevention, and service-account tokens that stop working once their account is gone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k1s_tests::Server;

fn server(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["--ephemeral"];
    args.extend_from_slice(extra);
    let server = Server::start(tmp.path().join("data"), &args).unwrap();
    (tmp, server)
}

/// Poll `check` until it returns `Some` (RBAC changes reach the authorizer through a watch).
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A kubeconfig for the server with `user` (YAML of a kubeconfig `user:` entry).
fn kubeconfig(s: &Server, dir: &Path, name: &str, user: &str) -> PathBuf {
    let ca = s.data_dir.join("tls/ca.crt");
    let path = dir.join(format!("{name}.kubeconfig"));
    let contents = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user:\n{user}\n",
        s.url(),
        ca.display()
    );
    std::fs::write(&path, contents).unwrap();
    path
}

/// A kubeconfig holding a client certificate for `cn` in `groups`, signed with the cluster CA.
fn cert_user(s: &Server, dir: &Path, cn: &str, groups: &[&str]) -> PathBuf {
    let tls = s.data_dir.join("tls");
    let key = dir.join(format!("{cn}.key"));
    let csr = dir.join(format!("{cn}.csr"));
    let crt = dir.join(format!("{cn}.crt"));
    let ext = dir.join("client.ext");
    std::fs::write(&ext, "extendedKeyUsage=clientAuth\n").unwrap();
    let mut subject = String::new();
    for g in groups {
        subject.push_str(&format!("/O={g}"));
    }
    subject.push_str(&format!("/CN={cn}"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-subj",
        &subject,
        "-out",
        csr.to_str().unwrap(),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        tls.join("ca.crt").to_str().unwrap(),
        "-CAkey",
        tls.join("ca.key").to_str().unwrap(),
        "-CAcreateserial",
        "-CAserial",
        dir.join("ca.srl").to_str().unwrap(),
        "-days",
        "1",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
    ]);
    kubeconfig(
        s,
        dir,
        cn,
        &format!(
            "    client-certificate: {}\n    client-key: {}",
            crt.display(),
            key.display()
        ),
    )
}

fn token_user(s: &Server, dir: &Path, name: &str, token: &str) -> PathBuf {
    kubeconfig(s, dir, name, &format!("    token: {token}"))
}

/// kubectl with another kubeconfig: (success, stdout, stderr).
fn kubectl_as(s: &Server, config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(config)
        .arg("--cache-dir")
        .arg(s.data_dir.with_extension(format!(
            "cache-{}",
            config.file_name().unwrap().to_string_lossy()
        )))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok_as(s: &Server, config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl_as(s, config, args);
    assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
    out
}

fn err_as(s: &Server, config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = kubectl_as(s, config, args);
    assert!(!ok, "kubectl {args:?} unexpectedly succeeded:\n{out}");
    err
}

/// curl without a client certificate: the body, a newline and the status code.
fn curl_anonymous(s: &Server, path: &str, extra: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .arg("--cacert")
        .arg(s.data_dir.join("tls/ca.crt"))
        .args(extra)
        .arg(format!("{}{path}", s.url()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn can_i(s: &Server, config: &Path, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let (_, out, _) = kubectl_as(s, config, &all);
    out.trim().to_string()
}

#[test]
fn a_user_gets_what_rbac_grants_and_nothing_more() {
    let (tmp, s) = server(&[]);
    let bob = cert_user(&s, tmp.path(), "bob", &["devs"]);

    // No bindings: authenticated, but forbidden.
    let err = err_as(&s, &bob, &["get", "pods"]);
    assert!(
        err.contains(
            "Error from server (Forbidden): pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{err}"
    );
    assert_eq!(can_i(&s, &bob, &["list", "pods"]), "no");
    let whoami = ok_as(&s, &bob, &["auth", "whoami"]);
    assert!(whoami.contains("bob"), "{whoami}");
    assert!(whoami.contains("[devs system:authenticated]"), "{whoami}");

    // view in one namespace: allowed there, forbidden elsewhere.
    s.kubectl_ok(&["create", "namespace", "team"]).unwrap();
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "bob-view",
        "--clusterrole=view",
        "--user=bob",
        "-n",
        "team",
    ])
    .unwrap();
    s.kubectl_ok(&["create", "configmap", "settings", "-n", "team"])
        .unwrap();
    eventually("the binding to take effect", || {
        kubectl_as(&s, &bob, &["get", "configmaps", "-n", "team"])
            .0
            .then_some(())
    });
    let out = ok_as(&s, &bob, &["get", "configmaps", "-n", "team"]);
    assert!(out.contains("settings"), "{out}");
    let err = err_as(&s, &bob, &["get", "configmaps", "-n", "default"]);
    assert!(
        err.contains("configmaps is forbidden: User \"bob\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""),
        "{err}"
    );
    let err = err_as(&s, &bob, &["get", "secrets", "-n", "team"]);
    assert!(err.contains("cannot list resource \"secrets\""), "{err}");
    let err = err_as(&s, &bob, &["create", "configmap", "x", "-n", "team"]);
    assert!(
        err.contains("cannot create resource \"configmaps\""),
        "{err}"
    );

    // can-i agrees with what the server enforces.
    assert_eq!(
        can_i(&s, &bob, &["list", "configmaps", "-n", "team"]),
        "yes"
    );
    assert_eq!(
        can_i(&s, &bob, &["list", "configmaps", "-n", "default"]),
        "no"
    );
    assert_eq!(can_i(&s, &bob, &["get", "secrets", "-n", "team"]), "no");
    assert_eq!(can_i(&s, &bob, &["create", "pods", "-n", "team"]), "no");
    let list = ok_as(&s, &bob, &["auth", "can-i", "--list", "-n", "team"]);
    let configmaps = list
        .lines()
        .find(|l| l.starts_with("configmaps "))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(configmaps.contains("[get list watch]"), "{list}");
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    let list = ok_as(&s, &bob, &["auth", "can-i", "--list", "-n", "default"]);
    assert!(!list.contains("configmaps "), "{list}");

    // Impersonation: the admin may, bob may not.
    let admin = s.kubeconfig();
    let err = err_as(
        &s,
        &admin,
        &["get", "configmaps", "--as", "bob", "-n", "default"],
    );
    assert!(
        err.contains("User \"bob\" cannot list resource \"configmaps\""),
        "{err}"
    );
    let out = ok_as(
        &s,
        &admin,
        &["get", "configmaps", "--as", "bob", "-n", "team"],
    );
    assert!(out.contains("settings"), "{out}");
    assert_eq!(
        can_i(
            &s,
            &admin,
            &["list", "configmaps", "-n", "team", "--as", "bob"]
        ),
        "yes"
    );
    let whoami = ok_as(
        &s,
        &admin,
        &["auth", "whoami", "--as", "alice", "--as-group", "qa"],
    );
    assert!(
        whoami.contains("alice") && whoami.contains("[qa system:authenticated]"),
        "{whoami}"
    );
    let err = err_as(&s, &bob, &["get", "pods", "--as", "alice"]);
    assert!(
        err.contains("users \"alice\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"),
        "{err}"
    );

    // Escalation: admin in its namespace may bind edit, not cluster-admin, and may not write a
    // Role with rules it does not hold.
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "bob-admin",
        "--clusterrole=admin",
        "--user=bob",
        "-n",
        "team",
    ])
    .unwrap();
    eventually("the admin binding to take effect", || {
        (can_i(&s, &bob, &["create", "rolebindings", "-n", "team"]) == "yes").then_some(())
    });
    ok_as(
        &s,
        &bob,
        &[
            "create",
            "rolebinding",
            "carol-edit",
            "--clusterrole=edit",
            "--user=carol",
            "-n",
            "team",
        ],
    );
    let err = err_as(
        &s,
        &bob,
        &[
            "create",
            "rolebinding",
            "carol-root",
            "--clusterrole=cluster-admin",
            "--user=carol",
            "-n",
            "team",
        ],
    );
    assert!(
        err.contains("rolebindings.rbac.authorization.k8s.io \"carol-root\" is forbidden: user \"bob\" (groups=[\"devs\" \"system:authenticated\"]) is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    ok_as(
        &s,
        &bob,
        &[
            "create",
            "role",
            "cm-reader",
            "--verb=get",
            "--resource=configmaps",
            "-n",
            "team",
        ],
    );
    let err = err_as(
        &s,
        &bob,
        &[
            "create",
            "role",
            "node-reader",
            "--verb=get",
            "--resource=nodes",
            "-n",
            "team",
        ],
    );
    assert!(
        err.contains("is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}"),
        "{err}"
    );
}

#[test]
fn anonymous_requests_and_credentials() {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), "s3cret,alice,alice-uid,\"devs,qa\"\n").unwrap();
    let (tmp, s) = server(&["--token-auth-file", tokens.path().to_str().unwrap()]);

    // Anonymous: only the public endpoints.
    assert!(curl_anonymous(&s, "/healthz", &[]).ends_with("\n200"));
    assert!(curl_anonymous(&s, "/version", &[]).ends_with("\n200"));
    let out = curl_anonymous(&s, "/api/v1/namespaces", &[]);
    assert!(out.ends_with("\n403"), "{out}");
    assert!(
        out.contains("namespaces is forbidden: User \\\"system:anonymous\\\" cannot list resource \\\"namespaces\\\" in API group \\\"\\\" at the cluster scope"),
        "{out}"
    );
    let out = curl_anonymous(&s, "/metrics", &[]);
    assert!(
        out.contains("forbidden: User \\\"system:anonymous\\\" cannot get path \\\"/metrics\\\"")
            && out.ends_with("\n403"),
        "{out}"
    );
    // A bad token is a 401, even where anonymous would be allowed.
    let out = curl_anonymous(&s, "/healthz", &["-H", "Authorization: Bearer nope"]);
    assert!(
        out.contains("\"reason\":\"Unauthorized\"") && out.ends_with("\n401"),
        "{out}"
    );

    // Static tokens.
    let alice = token_user(&s, tmp.path(), "alice", "s3cret");
    let whoami = ok_as(&s, &alice, &["auth", "whoami", "-o", "json"]);
    assert!(whoami.contains("\"username\": \"alice\""), "{whoami}");
    assert!(whoami.contains("\"uid\": \"alice-uid\""), "{whoami}");
    assert!(whoami.contains("\"system:authenticated\""), "{whoami}");
    let err = err_as(
        &s,
        &token_user(&s, tmp.path(), "bad", "wrong"),
        &["get", "pods"],
    );
    assert!(err.contains("You must be logged in to the server"), "{err}");

    // The certificate wins over a token sent with it.
    let out = s
        .kubectl_ok(&["--token", "wrong", "auth", "whoami"])
        .unwrap();
    assert!(out.contains("system:masters"), "{out}");

    // The join token pins the CA bundle served, without authentication, at /cacerts.
    let served = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(s.data_dir.join("tls/ca.crt"))
        .arg(format!("{}/cacerts", s.url()))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&served.stdout).starts_with("-----BEGIN CERTIFICATE-----"));
    let hash = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&served.stdout)?;
            child.wait_with_output()
        })
        .unwrap();
    let hash = String::from_utf8_lossy(&hash.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let token = std::fs::read_to_string(s.data_dir.join("token")).unwrap();
    assert!(
        token.starts_with(&format!("K10{hash}::server:")),
        "{token} vs {hash}"
    );

    // Discovery of the service-account issuer is public.
    let out = curl_anonymous(&s, "/.well-known/openid-configuration", &[]);
    assert!(
        out.contains("\"jwks_uri\"") && out.ends_with("\n200"),
        "{out}"
    );
    let out = curl_anonymous(&s, "/openid/v1/jwks", &[]);
    assert!(
        out.contains("\"kty\":\"EC\"") && out.ends_with("\n200"),
        "{out}"
    );
}

#[test]
fn service_account_tokens_live_as_long_as_their_account() {
    let (tmp, s) = server(&[]);
    s.kubectl_ok(&["create", "serviceaccount", "builder"])
        .unwrap();
    let token = s.kubectl_ok(&["create", "token", "builder"]).unwrap();
    let sa = token_user(&s, tmp.path(), "builder", token.trim());
    let whoami = ok_as(&s, &sa, &["auth", "whoami"]);
    assert!(
        whoami.contains("system:serviceaccount:default:builder"),
        "{whoami}"
    );
    assert!(
        whoami.contains("system:serviceaccounts:default"),
        "{whoami}"
    );
    let err = err_as(&s, &sa, &["get", "pods"]);
    assert!(
        err.contains("User \"system:serviceaccount:default:builder\" cannot list"),
        "{err}"
    );
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "builder-view",
        "--clusterrole=view",
        "--serviceaccount=default:builder",
    ])
    .unwrap();
    eventually("the binding to take effect", || {
        kubectl_as(&s, &sa, &["get", "pods"]).0.then_some(())
    });
    // A token from a token-only kubeconfig can create tokens when RBAC allows it.
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "builder-edit",
        "--clusterrole=edit",
        "--serviceaccount=default:builder",
    ])
    .unwrap();
    let second = eventually("the edit binding to take effect", || {
        let (ok, out, _) = kubectl_as(&s, &sa, &["create", "token", "builder"]);
        ok.then_some(out)
    });
    assert!(second.trim().split('.').count() == 3, "{second}");

    // Deleting the account revokes its tokens.
    s.kubectl_ok(&["delete", "serviceaccount", "builder"])
        .unwrap();
    let err = eventually("the token to stop working", || {
        let (ok, _, err) = kubectl_as(&s, &sa, &["auth", "whoami"]);
        (!ok).then_some(err)
    });
    assert!(err.contains("You must be logged in to the server"), "{err}");

    // A token bound to a pod ends with the pod.
    s.kubectl_ok(&["create", "serviceaccount", "runner"])
        .unwrap();
    s.kubectl_ok(&["run", "p", "--image=nginx"]).unwrap();
    let bound = s
        .kubectl_ok(&[
            "create",
            "token",
            "runner",
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
        ])
        .unwrap();
    let runner = token_user(&s, tmp.path(), "runner", bound.trim());
    let whoami = ok_as(&s, &runner, &["auth", "whoami", "-o", "json"]);
    assert!(
        whoami.contains("authentication.kubernetes.io/pod-name"),
        "{whoami}"
    );
    s.kubectl_ok(&["delete", "pod", "p", "--grace-period=0", "--force"])
        .unwrap();
    eventually("the pod-bound token to stop working", || {
        (!kubectl_as(&s, &runner, &["auth", "whoami"]).0).then_some(())
    });

    // Another audience: refused by the API, accepted by TokenReview for that audience.
    let foreign = s
        .kubectl_ok(&[
            "create",
            "token",
            "runner",
            "--audience=foo",
            "--duration=10m",
        ])
        .unwrap();
    let foo = token_user(&s, tmp.path(), "foo", foreign.trim());
    let err = err_as(&s, &foo, &["auth", "whoami"]);
    assert!(err.contains("You must be logged in to the server"), "{err}");
    let review = |audiences: &str| {
        s.curl(
            "application/json",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            &format!(
                r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{}","audiences":{audiences}}}}}"#,
                foreign.trim()
            ),
        )
    };
    let accepted = review(r#"["foo"]"#);
    assert!(accepted.ends_with("\n201"), "{accepted}");
    assert!(accepted.contains(r#""authenticated":true"#), "{accepted}");
    assert!(
        accepted.contains(r#""username":"system:serviceaccount:default:runner""#),
        "{accepted}"
    );
    assert!(
        accepted.contains(r#""groups":["system:serviceaccounts","system:serviceaccounts:default","system:authenticated"]"#),
        "{accepted}"
    );
    assert!(accepted.contains(r#""audiences":["foo"]"#), "{accepted}");
    let refused = review("[]");
    assert!(!refused.contains(r#""authenticated":true"#), "{refused}");
    assert!(refused.contains("\"error\""), "{refused}");

    // Too short a lifetime is refused as upstream does.
    let err = s
        .kubectl_err(&["create", "token", "runner", "--duration=1m"])
        .unwrap();
    assert!(
        err.contains("spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"),
        "{err}"
    );
}

#[test]
fn a_node_reads_only_what_its_pods_use() {
    let (tmp, s) = server(&[]);
    let node = cert_user(&s, tmp.path(), "system:node:n1", &["system:nodes"]);
    for secret in ["mine", "theirs"] {
        s.kubectl_ok(&["create", "secret", "generic", secret, "--from-literal=k=v"])
            .unwrap();
    }
    let pod = |name: &str, node: &str, secret: &str| {
        let path = tmp.path().join(format!("{name}.yaml"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: nginx}}]\n  volumes: [{{name: s, secret: {{secretName: {secret}}}}}]\n"
            ),
        )
        .unwrap();
        s.kubectl_ok(&["create", "-f", path.to_str().unwrap()])
            .unwrap();
    };
    pod("on-n1", "n1", "mine");
    pod("on-n2", "n2", "theirs");

    let out = ok_as(&s, &node, &["get", "secret", "mine", "-o", "name"]);
    assert_eq!(out.trim(), "secret/mine");
    let err = err_as(&s, &node, &["get", "secret", "theirs"]);
    assert!(
        err.contains("secrets \"theirs\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object"),
        "{err}"
    );
    let err = err_as(&s, &node, &["get", "secrets"]);
    assert!(err.contains("cannot list resource \"secrets\""), "{err}");
    // Upstream's node rules: its own pods are readable (listed with the node's field
    // selector), deployments are not.
    let out = ok_as(
        &s,
        &node,
        &[
            "get",
            "pods",
            "-o",
            "name",
            "--field-selector=spec.nodeName=n1",
        ],
    );
    assert_eq!(out.trim(), "pod/on-n1");
    let err = err_as(&s, &node, &["get", "pods"]);
    assert!(
        err.ends_with("can only list/watch pods with spec.nodeName field selector\n"),
        "{err}"
    );
    assert_eq!(can_i(&s, &node, &["create", "pods/eviction"]), "yes");
    assert_eq!(can_i(&s, &node, &["list", "deployments"]), "no");
    assert_eq!(can_i(&s, &node, &["get", "secret/mine"]), "yes");
    assert_eq!(
        can_i(&s, &node, &["get", "secret/theirs"]),
        "no - no relationship found between node 'n1' and this object"
    );
}

/// A request with the client certificate `cert_user` made for `cn` (for what kubectl cannot
/// send without reading first): the status and the body.
fn curl_cert(
    s: &Server,
    dir: &Path,
    cn: &str,
    method: &str,
    path: &str,
    patch: &str,
) -> (u16, String) {
    // curl reads a colon in a certificate path as the start of a passphrase.
    let safe = cn.replace(':', "-");
    for ext in ["crt", "key"] {
        std::fs::copy(
            dir.join(format!("{cn}.{ext}")),
            dir.join(format!("{safe}.{ext}")),
        )
        .unwrap();
    }
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "-X", method])
        .arg("--cacert")
        .arg(s.data_dir.join("tls/ca.crt"))
        .arg("--cert")
        .arg(dir.join(format!("{safe}.crt")))
        .arg("--key")
        .arg(dir.join(format!("{safe}.key")))
        .args([
            "-H",
            "Content-Type: application/merge-patch+json",
            "--data-binary",
            patch,
        ])
        .arg(format!("{}{path}", s.url()))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

/// NodeRestriction and the node authorizer together, as a kubelet meets them: node `n1` may
/// register and update its own Node (labels only in the kubelet's set, not its taints), its
/// own Lease and the status of its own pods, and nothing of node `n2`.
#[test]
fn a_node_changes_only_its_own_node_lease_and_pods() {
    let (tmp, s) = server(&[]);
    let dir = tmp.path();
    let n1 = cert_user(&s, dir, "system:node:n1", &["system:nodes"]);
    let file = |name: &str, contents: String| {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_string()
    };
    let node = |name: &str, labels: &str| {
        file(
            &format!("node-{name}.yaml"),
            format!(
                "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\n"
            ),
        )
    };
    let lease = |name: &str, ns: &str| {
        file(
            &format!("lease-{name}-{ns}.yaml"),
            format!(
                "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{holderIdentity: {name}, leaseDurationSeconds: 40}}\n"
            ),
        )
    };
    s.kubectl_ok(&["create", "-f", &node("n2", "")]).unwrap();
    s.kubectl_ok(&["create", "-f", &lease("n2", "kube-node-lease")])
        .unwrap();
    for (pod, on) in [("on-n1", "n1"), ("on-n2", "n2")] {
        let path = file(
            &format!("{pod}.yaml"),
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}}}\nspec:\n  nodeName: {on}\n  containers: [{{name: c, image: nginx}}]\n"
            ),
        );
        s.kubectl_ok(&["create", "-f", &path]).unwrap();
    }

    // Registering: only itself, only with the kubelet's labels.
    let err = err_as(
        &s,
        &n1,
        &["create", "-f", &node("n3", "foo.kubernetes.io/x: v")],
    );
    assert!(
        err.contains("nodes \"n3\" is forbidden: node \"n1\" is not allowed to modify node \"n3\""),
        "{err}"
    );
    let err = err_as(
        &s,
        &n1,
        &[
            "create",
            "-f",
            &node(
                "n1",
                "node-role.kubernetes.io/master: \"\", foo.kubernetes.io/x: v, kubernetes.io/hostname: n1",
            ),
        ],
    );
    assert!(
        err.contains("nodes \"n1\" is forbidden: node \"n1\" is not allowed to set the following labels: foo.kubernetes.io/x, node-role.kubernetes.io/master"),
        "{err}"
    );
    ok_as(
        &s,
        &n1,
        &["create", "-f", &node("n1", "kubernetes.io/hostname: n1")],
    );

    // Its own labels: the kubelet's set, and labels outside kubernetes.io and k8s.io.
    let out = ok_as(
        &s,
        &n1,
        &[
            "label",
            "node",
            "n1",
            "--overwrite",
            "kubernetes.io/hostname=host-1",
            "topology.kubernetes.io/zone=z1",
            "node.kubernetes.io/instance-type=small",
            "example.com/rack=r7",
        ],
    );
    assert!(out.contains("node/n1 labeled"), "{out}");
    for (label, key) in [
        (
            "node-role.kubernetes.io/master=",
            "node-role.kubernetes.io/master",
        ),
        ("foo.kubernetes.io/x=y", "foo.kubernetes.io/x"),
        (
            "node-restriction.kubernetes.io/pool=a",
            "node-restriction.kubernetes.io/pool",
        ),
        ("k8s.io/x=y", "k8s.io/x"),
    ] {
        let err = err_as(&s, &n1, &["label", "node", "n1", label]);
        assert!(
            err.contains(&format!(
                "nodes \"n1\" is forbidden: is not allowed to modify labels: {key}"
            )),
            "{err}"
        );
    }
    let err = err_as(&s, &n1, &["taint", "node", "n1", "k=v:NoSchedule"]);
    assert!(
        err.contains("nodes \"n1\" is forbidden: node \"n1\" is not allowed to modify taints"),
        "{err}"
    );
    let labels = s
        .kubectl_ok(&["get", "node", "n1", "-o", "jsonpath={.metadata.labels}"])
        .unwrap();
    assert_eq!(
        labels,
        r#"{"example.com/rack":"r7","kubernetes.io/hostname":"host-1","node.kubernetes.io/instance-type":"small","topology.kubernetes.io/zone":"z1"}"#
    );

    // Its own status, not another node's Node. (kubectl would read the status subresource
    // first, which a node may not, so these patches go as a kubelet sends them.)
    let ready = r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status"}]}}"#;
    let node_status = |name: &str| format!("/api/v1/nodes/{name}/status");
    let (code, body) = curl_cert(
        &s,
        dir,
        "system:node:n1",
        "PATCH",
        &node_status("n1"),
        ready,
    );
    assert_eq!(code, 200, "{body}");
    let status = s
        .kubectl_ok(&[
            "get",
            "node",
            "n1",
            "-o",
            "jsonpath={.status.conditions[0].reason}",
        ])
        .unwrap();
    assert_eq!(status, "KubeletReady");
    let (code, body) = curl_cert(
        &s,
        dir,
        "system:node:n1",
        "PATCH",
        &node_status("n2"),
        ready,
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#""message":"nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\"""#),
        "{body}"
    );
    // kubectl reads the node before patching it, which the node authorizer refuses; the patch
    // itself is NodeRestriction's to refuse.
    let relabel = r#"{"metadata":{"labels":{"a":"b"}}}"#;
    let err = err_as(
        &s,
        &n1,
        &["patch", "node", "n2", "--type=merge", "-p", relabel],
    );
    assert!(
        err.contains("nodes \"n2\" is forbidden: User \"system:node:n1\" cannot get resource \"nodes\" in API group \"\" at the cluster scope: node 'n1' cannot read 'n2', only its own Node object"),
        "{err}"
    );
    let (code, body) = curl_cert(
        &s,
        dir,
        "system:node:n1",
        "PATCH",
        "/api/v1/nodes/n2",
        relabel,
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#""message":"nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\"""#),
        "{body}"
    );
    let err = err_as(&s, &n1, &["delete", "node", "n2"]);
    assert!(
        err.contains("nodes \"n2\" is forbidden: User \"system:node:n1\" cannot delete resource \"nodes\" in API group \"\" at the cluster scope"),
        "{err}"
    );

    // Its own Lease in kube-node-lease, no other.
    ok_as(&s, &n1, &["create", "-f", &lease("n1", "kube-node-lease")]);
    ok_as(
        &s,
        &n1,
        &[
            "patch",
            "lease",
            "n1",
            "-n",
            "kube-node-lease",
            "--type=merge",
            "-p",
            r#"{"spec":{"leaseDurationSeconds":30}}"#,
        ],
    );
    let err = err_as(&s, &n1, &["create", "-f", &lease("n3", "kube-node-lease")]);
    assert!(
        err.contains("leases.coordination.k8s.io \"n3\" is forbidden: can only access node lease with the same name as the requesting node"),
        "{err}"
    );
    let err = err_as(
        &s,
        &n1,
        &[
            "patch",
            "lease",
            "n2",
            "-n",
            "kube-node-lease",
            "--type=merge",
            "-p",
            r#"{"spec":{"holderIdentity":"n1"}}"#,
        ],
    );
    assert!(
        err.contains("leases.coordination.k8s.io \"n2\" is forbidden: User \"system:node:n1\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-node-lease\": can only access node lease with the same name as the requesting node"),
        "{err}"
    );
    let (code, body) = curl_cert(
        &s,
        dir,
        "system:node:n1",
        "PATCH",
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2",
        r#"{"spec":{"holderIdentity":"n1"}}"#,
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#""message":"leases.coordination.k8s.io \"n2\" is forbidden: User \"system:node:n1\" cannot patch resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-node-lease\": can only access node lease with the same name as the requesting node""#),
        "{body}"
    );
    let err = err_as(&s, &n1, &["create", "-f", &lease("n1", "default")]);
    assert!(
        err.contains("leases.coordination.k8s.io is forbidden: User \"system:node:n1\" cannot create resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"default\": can only access leases in the \"kube-node-lease\" system namespace"),
        "{err}"
    );

    // The status of its own pods; deleting only its own pods.
    let running = r#"{"status":{"phase":"Running"}}"#;
    let pod_status = |name: &str| format!("/api/v1/namespaces/default/pods/{name}/status");
    let (code, body) = curl_cert(
        &s,
        dir,
        "system:node:n1",
        "PATCH",
        &pod_status("on-n1"),
        running,
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = curl_cert(
        &s,
        dir,
        "system:node:n1",
        "PATCH",
        &pod_status("on-n2"),
        running,
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#""message":"pods \"on-n2\" is forbidden: node \"n1\" can only update pod status for pods with spec.nodeName set to itself""#),
        "{body}"
    );
    let err = err_as(&s, &n1, &["delete", "pod", "on-n2", "--wait=false"]);
    assert!(
        err.contains("pods \"on-n2\" is forbidden: node \"n1\" can only delete pods with spec.nodeName set to itself"),
        "{err}"
    );
    let out = ok_as(&s, &n1, &["delete", "pod", "on-n1", "--wait=false"]);
    assert!(out.contains("pod \"on-n1\" deleted"), "{out}");
    // on-n1 waits for its (absent) kubelet to finish it; on-n2 is untouched.
    let pods = s
        .kubectl_ok(&[
            "get",
            "pods",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{"\n"}{end}"#,
        ])
        .unwrap();
    let lines: Vec<&str> = pods.lines().collect();
    assert_eq!(lines.len(), 2, "{pods}");
    assert!(lines[0].starts_with("on-n1 Running 20"), "{pods}");
    assert_eq!(lines[1], "on-n2 Pending ", "{pods}");
}

/// What the server answered a kubectl command: the HTTP status (200 for success) and kubectl's
/// error output.
fn outcome(s: &Server, config: &Path, args: &[&str]) -> (u16, String) {
    let (ok, _, err) = kubectl_as(s, config, args);
    if ok {
        return (200, err);
    }
    for (needle, code) in [
        ("(Forbidden)", 403),
        // The generator subcommands print the Status message alone.
        ("is forbidden:", 403),
        ("You must be logged in", 401),
        ("(NotFound)", 404),
        ("(AlreadyExists)", 409),
    ] {
        if err.contains(needle) {
            return (code, err);
        }
    }
    panic!("kubectl {args:?}: {err}");
}

/// The answers (allowed, reason) to access reviews of `attributes` (each a review spec's
/// `resourceAttributes` or `nonResourceAttributes`), all created by one `kubectl create`:
/// SelfSubjectAccessReviews with `config`'s credentials, or for `subject` (user, group)
/// SubjectAccessReviews `config` asks about that user.
fn access_reviews(
    s: &Server,
    config: &Path,
    file: &Path,
    subject: Option<(&str, &str)>,
    attributes: &[serde_json::Value],
) -> Vec<(bool, String)> {
    let kind = match subject {
        Some(_) => "SubjectAccessReview",
        None => "SelfSubjectAccessReview",
    };
    let items: Vec<serde_json::Value> = attributes
        .iter()
        .map(|spec| {
            let mut spec = spec.clone();
            if let Some((user, group)) = subject {
                spec["user"] = user.into();
                spec["groups"] = serde_json::json!([group]);
            }
            serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec})
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    std::fs::write(file, list.to_string()).unwrap();
    let out = ok_as(
        s,
        config,
        &[
            "create",
            "--validate=false",
            "-f",
            file.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    let answers: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(answers.len(), attributes.len(), "{out}");
    answers
        .iter()
        .zip(attributes)
        .map(|(answer, asked)| {
            for field in ["resourceAttributes", "nonResourceAttributes"] {
                assert_eq!(answer["spec"][field], asked[field], "{answer}");
            }
            let status = &answer["status"];
            (
                status["allowed"].as_bool().unwrap_or(false),
                status["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// An anonymous request (curl with the cluster CA only): the status and the Status message.
fn anonymous_outcome(s: &Server, method: &str, path: &str) -> (u16, String) {
    let mut extra = vec!["-X", method];
    if method == "POST" {
        extra.extend([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "{}",
        ]);
    }
    let out = curl_anonymous(s, path, &extra);
    let (body, code) = out.rsplit_once('\n').unwrap();
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|status| status["message"].as_str().map(str::to_string))
        .unwrap_or_default();
    (code.parse().unwrap(), message)
}

/// One cell of the authorization matrix: a request asked of every column.
struct Cell {
    /// The access review's attributes: `resourceAttributes` or `nonResourceAttributes`.
    review: serde_json::Value,
    /// The real request as method and path, for anonymous requests (sent by curl with no
    /// credentials: kubectl would prompt for them, and cannot map a resource without discovery).
    raw: (&'static str, &'static str),
    /// The real request as kubectl arguments (`USER` stands for the column, `DIR` for the
    /// test's directory).
    request: &'static [&'static str],
    /// The columns the review allows.
    yes: &'static [&'static str],
    /// The columns whose request is served, and the status they get.
    served: &'static [&'static str],
    status: u16,
    /// Columns refused by something other than the authorizer (escalation checks), with the
    /// message they get.
    refused: Vec<(&'static str, String)>,
}

fn resource(verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> serde_json::Value {
    let mut attrs = serde_json::json!({"verb": verb, "resource": resource});
    for (key, value) in [("group", group), ("namespace", ns), ("name", name)] {
        if !value.is_empty() {
            attrs[key] = value.into();
        }
    }
    serde_json::json!({ "resourceAttributes": attrs })
}

fn path(path: &str) -> serde_json::Value {
    serde_json::json!({"nonResourceAttributes": {"verb": "get", "path": path}})
}

const AUTHENTICATED: &[&str] = &["nobody", "viewer", "editor", "owner", "sa", "node"];
const EVERYONE: &[&str] = &[
    "anonymous",
    "nobody",
    "viewer",
    "editor",
    "owner",
    "sa",
    "node",
];

/// Every identity kind against the verbs and resources the security chain decides, each cell
/// asked twice: as an access review (what `kubectl auth can-i` sends) and as the real request.
///
/// The columns: `anonymous` (curl with the cluster CA and no credentials: kubectl prompts for a
/// user when its kubeconfig has none, and cannot map resources without the discovery anonymous
/// may not read), `nobody` (a certificate without bindings), `viewer`, `editor` and
/// `owner` (bound to view, edit and admin in `team`), `sa` (the ServiceAccount `team/robot`
/// bound to edit, with a token from `kubectl create token`) and `node` (the certificate of
/// node `n1`).
///
/// Anonymous may not create a SelfSubjectAccessReview (upstream grants that to authenticated
/// users only, and `kubectl auth can-i --as=system:anonymous` is refused the same way), so its
/// column is asked as SubjectAccessReviews from the admin for user `system:anonymous` in group
/// `system:unauthenticated`; the other columns send SelfSubjectAccessReviews with their own
/// credentials.
#[test]
fn authorization_matrix_agrees_with_access_reviews() {
    let (tmp, s) = server(&[]);
    let dir = tmp.path();
    let admin = s.kubeconfig();
    s.kubectl_ok(&["create", "namespace", "team"]).unwrap();
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=k=v",
        "-n",
        "team",
    ])
    .unwrap();
    s.kubectl_ok(&["run", "p", "--image=nginx", "-n", "team"])
        .unwrap();
    for node in ["n1", "n2"] {
        let file = dir.join(format!("{node}.yaml"));
        std::fs::write(
            &file,
            format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n"),
        )
        .unwrap();
        s.kubectl_ok(&["create", "-f", file.to_str().unwrap()])
            .unwrap();
    }
    s.kubectl_ok(&["create", "serviceaccount", "robot", "-n", "team"])
        .unwrap();
    for (user, role) in [("viewer", "view"), ("editor", "edit"), ("owner", "admin")] {
        s.kubectl_ok(&[
            "create",
            "rolebinding",
            user,
            &format!("--clusterrole={role}"),
            &format!("--user={user}"),
            "-n",
            "team",
        ])
        .unwrap();
    }
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "robot",
        "--clusterrole=edit",
        "--serviceaccount=team:robot",
        "-n",
        "team",
    ])
    .unwrap();
    let token = s
        .kubectl_ok(&["create", "token", "robot", "-n", "team"])
        .unwrap();
    let review = serde_json::json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"nonResourceAttributes": {"verb": "get", "path": "/version"}},
    });
    std::fs::write(dir.join("one-review.json"), review.to_string()).unwrap();

    // (column, user name, kubeconfig)
    let mut columns: Vec<(&str, &str, PathBuf)> =
        vec![("anonymous", "system:anonymous", PathBuf::new())];
    for user in ["nobody", "viewer", "editor", "owner"] {
        columns.push((user, user, cert_user(&s, dir, user, &[])));
    }
    columns.push((
        "sa",
        "system:serviceaccount:team:robot",
        token_user(&s, dir, "robot", token.trim()),
    ));
    columns.push((
        "node",
        "system:node:n1",
        cert_user(&s, dir, "system:node:n1", &["system:nodes"]),
    ));
    eventually("the bindings to take effect", || {
        (can_i(&s, &columns[4].2, &["create", "roles", "-n", "team"]) == "yes"
            && can_i(&s, &columns[5].2, &["create", "configmaps", "-n", "team"]) == "yes")
            .then_some(())
    });

    let escalation = |kind: &str, name: &str, rules: &str| {
        format!(
            "{kind}.rbac.authorization.k8s.io \"{name}\" is forbidden: user \"owner\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{rules}"
        )
    };
    let bind_root = escalation(
        "rolebindings",
        "root-owner",
        "{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}",
    );
    let wide_role = escalation(
        "roles",
        "wide-owner",
        "{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"get\"]}",
    );
    let rbac = "rbac.authorization.k8s.io";
    let cells = vec![
        // A node lists pods only with the field selector `spec.nodeName=<node>`.
        Cell {
            raw: ("GET", "/api/v1/namespaces/team/pods"),
            review: resource("list", "", "pods", "team", ""),
            request: &["get", "pods", "-n", "team"],
            yes: &["viewer", "editor", "owner", "sa"],
            served: &["viewer", "editor", "owner", "sa"],
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/api/v1/namespaces/team/pods/p"),
            review: resource("get", "", "pods", "team", "p"),
            request: &["get", "pod", "p", "-n", "team"],
            yes: &["viewer", "editor", "owner", "sa"],
            served: &["viewer", "editor", "owner", "sa"],
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/api/v1/namespaces/team/secrets/s"),
            review: resource("get", "", "secrets", "team", "s"),
            request: &["get", "secret", "s", "-n", "team"],
            yes: &["editor", "owner", "sa"],
            served: &["editor", "owner", "sa"],
            status: 200,
            refused: vec![],
        },
        // Exec is authorized, then answered 404 until the agent serves it.
        Cell {
            raw: (
                "POST",
                "/api/v1/namespaces/team/pods/p/exec?command=true&stdout=true",
            ),
            review: serde_json::json!({"resourceAttributes": {"verb": "create", "resource": "pods", "subresource": "exec", "namespace": "team", "name": "p"}}),
            request: &[
                "create",
                "--raw",
                "/api/v1/namespaces/team/pods/p/exec?command=true&stdout=true",
                "-f",
                "/dev/null",
            ],
            yes: &["editor", "owner", "sa"],
            served: &["editor", "owner", "sa"],
            status: 404,
            refused: vec![],
        },
        Cell {
            raw: ("POST", "/api/v1/namespaces/team/configmaps"),
            review: resource("create", "", "configmaps", "team", ""),
            request: &["create", "configmap", "cm-USER", "-n", "team"],
            yes: &["editor", "owner", "sa"],
            served: &["editor", "owner", "sa"],
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: (
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles",
            ),
            review: resource("create", rbac, "roles", "team", ""),
            request: &[
                "create",
                "role",
                "r-USER",
                "--verb=get",
                "--resource=pods",
                "-n",
                "team",
            ],
            yes: &["owner"],
            served: &["owner"],
            status: 200,
            refused: vec![],
        },
        // admin may bind edit: it holds every rule of edit.
        Cell {
            raw: (
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings",
            ),
            review: resource("create", rbac, "rolebindings", "team", ""),
            request: &[
                "create",
                "rolebinding",
                "edit-USER",
                "--clusterrole=edit",
                "--user=carol",
                "-n",
                "team",
            ],
            yes: &["owner"],
            served: &["owner"],
            status: 200,
            refused: vec![],
        },
        // ... but not cluster-admin: no one here may bind it, and admin fails the escalation
        // check.
        Cell {
            raw: (
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/team/rolebindings",
            ),
            review: resource("bind", rbac, "clusterroles", "team", "cluster-admin"),
            request: &[
                "create",
                "rolebinding",
                "root-USER",
                "--clusterrole=cluster-admin",
                "--user=carol",
                "-n",
                "team",
            ],
            yes: &[],
            served: &[],
            status: 200,
            refused: vec![("owner", bind_root)],
        },
        // Nor write a Role with a rule it does not hold, lacking `escalate`.
        Cell {
            raw: (
                "POST",
                "/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles",
            ),
            review: resource("escalate", rbac, "roles", "team", ""),
            request: &[
                "create",
                "role",
                "wide-USER",
                "--verb=get",
                "--resource=nodes",
                "-n",
                "team",
            ],
            yes: &[],
            served: &[],
            status: 200,
            refused: vec![("owner", wide_role)],
        },
        Cell {
            raw: (
                "GET",
                "/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dn1",
            ),
            review: {
                let mut review = resource("list", "", "pods", "default", "");
                review["resourceAttributes"]["fieldSelector"] =
                    serde_json::json!({"rawSelector": "spec.nodeName=n1"});
                review
            },
            request: &[
                "get",
                "pods",
                "-n",
                "default",
                "--field-selector=spec.nodeName=n1",
            ],
            yes: &["node"],
            served: &["node"],
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/api/v1/namespaces"),
            review: resource("list", "", "namespaces", "", ""),
            request: &["get", "namespaces"],
            yes: &[],
            served: &[],
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/api/v1/nodes/n1"),
            review: resource("get", "", "nodes", "", "n1"),
            request: &["get", "node", "n1"],
            yes: &["node"],
            served: &["node"],
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/api/v1/nodes/n2"),
            review: resource("get", "", "nodes", "", "n2"),
            request: &["get", "node", "n2"],
            yes: &[],
            served: &[],
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/api/v1/nodes"),
            review: resource("list", "", "nodes", "", ""),
            request: &["get", "nodes"],
            yes: &[],
            served: &[],
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/healthz"),
            review: path("/healthz"),
            request: &["get", "--raw", "/healthz"],
            yes: EVERYONE,
            served: EVERYONE,
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/livez"),
            review: path("/livez"),
            request: &["get", "--raw", "/livez"],
            yes: EVERYONE,
            served: EVERYONE,
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/readyz"),
            review: path("/readyz"),
            request: &["get", "--raw", "/readyz"],
            yes: EVERYONE,
            served: EVERYONE,
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/version"),
            review: path("/version"),
            request: &["get", "--raw", "/version"],
            yes: EVERYONE,
            served: EVERYONE,
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/api"),
            review: path("/api"),
            request: &["get", "--raw", "/api"],
            yes: AUTHENTICATED,
            served: AUTHENTICATED,
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/apis"),
            review: path("/apis"),
            request: &["get", "--raw", "/apis"],
            yes: AUTHENTICATED,
            served: AUTHENTICATED,
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/openapi/v3"),
            review: path("/openapi/v3"),
            request: &["get", "--raw", "/openapi/v3"],
            yes: AUTHENTICATED,
            served: AUTHENTICATED,
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: ("GET", "/metrics"),
            review: path("/metrics"),
            request: &["get", "--raw", "/metrics"],
            yes: &[],
            served: &[],
            status: 200,
            refused: vec![],
        },
        Cell {
            raw: (
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            ),
            review: resource(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
            ),
            request: &[
                "create",
                "--validate=false",
                "-f",
                "DIR/one-review.json",
                "-o",
                "name",
            ],
            yes: AUTHENTICATED,
            served: AUTHENTICATED,
            status: 200,
            refused: vec![],
        },
    ];
    let asked: Vec<serde_json::Value> = cells.iter().map(|c| c.review.clone()).collect();

    // One thread per column: a column's requests touch only its own objects.
    std::thread::scope(|scope| {
        for (column, user, config) in &columns {
            let (s, cells, asked, admin) = (&s, &cells, &asked, &admin);
            scope.spawn(move || {
                let file = dir.join(format!("reviews-{column}.json"));
                let answers = if *column == "anonymous" {
                    access_reviews(
                        s,
                        admin,
                        &file,
                        Some(("system:anonymous", "system:unauthenticated")),
                        asked,
                    )
                } else {
                    access_reviews(s, config, &file, None, asked)
                };
                for (cell, (allowed, reason)) in cells.iter().zip(answers) {
                    let what = format!("{column} {}", cell.review);
                    assert_eq!(
                        allowed,
                        cell.yes.contains(column),
                        "review: {what} {reason}"
                    );
                    let request: Vec<String> = cell
                        .request
                        .iter()
                        .map(|a| {
                            a.replace("USER", column)
                                .replace("DIR", dir.to_str().unwrap())
                        })
                        .collect();
                    let request: Vec<&str> = request.iter().map(String::as_str).collect();
                    let (status, err) = if *column == "anonymous" {
                        anonymous_outcome(s, cell.raw.0, cell.raw.1)
                    } else {
                        outcome(s, config, &request)
                    };
                    if cell.served.contains(column) {
                        assert_eq!(status, cell.status, "request: {what}: {err}");
                    } else if let Some((_, message)) =
                        cell.refused.iter().find(|(c, _)| c == column)
                    {
                        assert_eq!(status, 403, "request: {what}: {err}");
                        assert!(err.contains(message), "request: {what}: {err}");
                    } else {
                        assert_eq!(status, 403, "request: {what}: {err}");
                        let cannot = format!("User \"{user}\" cannot ");
                        assert!(err.contains(&cannot), "request: {what}: {err}");
                        // The authorizer's reason, as the review gave it.
                        assert!(
                            err.trim_end().ends_with(&reason),
                            "request: {what}: {err} vs {reason}"
                        );
                    }
                }
            });
        }
    });

    // The node's reasons, as upstream's node authorizer gives them.
    let node = &columns[6].2;
    for (args, reason) in [
        (
            &["get", "secrets/s", "-n", "team"][..],
            "no relationship found between node 'n1' and this object",
        ),
        (
            &["get", "pods/p", "-n", "team"],
            "no relationship found between node 'n1' and this object",
        ),
        (
            &["get", "nodes/n2"],
            "node 'n1' cannot read 'n2', only its own Node object",
        ),
        (
            &["list", "nodes"],
            "node 'n1' cannot read all nodes, only its own Node object",
        ),
    ] {
        assert_eq!(can_i(&s, node, args), format!("no - {reason}"), "{args:?}");
    }
    // An anonymous review of itself is refused, as upstream refuses it.
    let err = err_as(
        &s,
        &admin,
        &[
            "auth",
            "can-i",
            "get",
            "pods",
            "--as=system:anonymous",
            "--as-group=system:unauthenticated",
        ],
    );
    assert!(
        err.contains("selfsubjectaccessreviews.authorization.k8s.io is forbidden: User \"system:anonymous\" cannot create resource \"selfsubjectaccessreviews\""),
        "{err}"
    );
}

#[test]
fn bootstrap_policy_is_reconciled_at_every_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(data.clone(), &[]).unwrap();
    s.kubectl_ok(&["delete", "clusterrole", "system:discovery"])
        .unwrap();
    s.kubectl_ok(&[
        "patch",
        "clusterrole",
        "system:basic-user",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/rules/-","value":{"verbs":["get"],"apiGroups":[""],"resources":["nodes"]}}]"#,
    ])
    .unwrap();
    s.kubectl_ok(&[
        "annotate",
        "--overwrite",
        "clusterrole",
        "system:public-info-viewer",
        "rbac.authorization.kubernetes.io/autoupdate=false",
    ])
    .unwrap();
    s.kubectl_ok(&[
        "patch",
        "clusterrole",
        "system:public-info-viewer",
        "--type=merge",
        "-p",
        r#"{"rules":[{"verbs":["get"],"nonResourceURLs":["/healthz"]}]}"#,
    ])
    .unwrap();
    assert!(s.stop().unwrap().success());

    let s = Server::start(data, &[]).unwrap();
    s.kubectl_ok(&["get", "clusterrole", "system:discovery"])
        .unwrap();
    let rules = s
        .kubectl_ok(&[
            "get",
            "clusterrole",
            "system:basic-user",
            "-o",
            "jsonpath={.rules[*].resources}",
        ])
        .unwrap();
    assert!(
        rules.contains("nodes") && rules.contains("selfsubjectaccessreviews"),
        "{rules}"
    );
    let kept = s
        .kubectl_ok(&[
            "get",
            "clusterrole",
            "system:public-info-viewer",
            "-o",
            "jsonpath={.rules[*].nonResourceURLs}",
        ])
        .unwrap();
    assert_eq!(kept, r#"["/healthz"]"#);
    // The aggregated roles are filled again from their sources.
    let view = s
        .kubectl_ok(&[
            "get",
            "clusterrole",
            "view",
            "-o",
            "jsonpath={.rules[*].resources}",
        ])
        .unwrap();
    assert!(view.contains("configmaps"), "{view}");
}
