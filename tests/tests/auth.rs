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
    // Upstream's node rules: pods and nodes are readable, deployments are not.
    let out = ok_as(&s, &node, &["get", "pods", "-o", "name"]);
    assert!(out.contains("pod/on-n2"), "{out}");
    assert_eq!(can_i(&s, &node, &["create", "pods/eviction"]), "yes");
    assert_eq!(can_i(&s, &node, &["list", "deployments"]), "no");
    assert_eq!(can_i(&s, &node, &["get", "secret/mine"]), "yes");
    assert_eq!(
        can_i(&s, &node, &["get", "secret/theirs"]),
        "no - no relationship found between node 'n1' and this object"
    );
}

/// What the server answers to `verb` on `path` for a kubeconfig: the HTTP status.
fn status_as(s: &Server, config: &Path, args: &[&str]) -> u16 {
    let (ok, _, err) = kubectl_as(s, config, args);
    if ok {
        return 200;
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
            return code;
        }
    }
    panic!("kubectl {args:?}: {err}");
}

#[test]
fn authorization_matrix_agrees_with_access_reviews() {
    let (tmp, s) = server(&[]);
    s.kubectl_ok(&["create", "namespace", "team"]).unwrap();
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
        "secret",
        "generic",
        "s",
        "--from-literal=k=v",
        "-n",
        "team",
    ])
    .unwrap();
    let users: Vec<(&str, PathBuf)> = ["nobody", "viewer", "editor", "owner"]
        .into_iter()
        .map(|u| (u, cert_user(&s, tmp.path(), u, &[])))
        .collect();
    eventually("the bindings to take effect", || {
        (can_i(&s, &users[3].1, &["create", "roles", "-n", "team"]) == "yes").then_some(())
    });
    // (can-i arguments, the real request, who is allowed)
    let cells: &[(&[&str], &[&str], &[&str])] = &[
        (
            &["list", "pods", "-n", "team"],
            &["get", "pods", "-n", "team"],
            &["viewer", "editor", "owner"],
        ),
        (
            &["get", "secrets/s", "-n", "team"],
            &["get", "secret", "s", "-n", "team"],
            &["editor", "owner"],
        ),
        (
            &["create", "configmaps", "-n", "team"],
            &["create", "configmap", "cm-USER", "-n", "team"],
            &["editor", "owner"],
        ),
        (
            &["create", "roles", "-n", "team"],
            &[
                "create",
                "role",
                "r-USER",
                "--verb=get",
                "--resource=pods",
                "-n",
                "team",
            ],
            &["owner"],
        ),
        (
            &["list", "pods", "-n", "default"],
            &["get", "pods", "-n", "default"],
            &[],
        ),
        (&["list", "namespaces"], &["get", "namespaces"], &[]),
    ];
    for (review, request, allowed) in cells {
        for (user, config) in &users {
            let request: Vec<String> = request.iter().map(|a| a.replace("USER", user)).collect();
            let request: Vec<&str> = request.iter().map(String::as_str).collect();
            let expected = allowed.contains(user);
            let answer = can_i(&s, config, review);
            assert_eq!(
                answer,
                if expected { "yes" } else { "no" },
                "{user} {review:?}"
            );
            let status = status_as(&s, config, &request);
            assert_eq!(
                status,
                if expected { 200 } else { 403 },
                "{user} {request:?}"
            );
        }
    }
    // Anonymous requests reach only the public paths.
    for (path, code) in [
        ("/healthz", "200"),
        ("/livez", "200"),
        ("/readyz", "200"),
        ("/version", "200"),
        ("/api", "403"),
        ("/apis", "403"),
        ("/openapi/v3", "403"),
        ("/api/v1/namespaces/default/pods", "403"),
    ] {
        let out = curl_anonymous(&s, path, &[]);
        assert!(out.ends_with(&format!("\n{code}")), "{path}: {out}");
    }
    // Without bindings: discovery, OpenAPI and self-reviews only.
    let nobody = &users[0].1;
    ok_as(&s, nobody, &["get", "--raw", "/api"]);
    ok_as(&s, nobody, &["get", "--raw", "/apis"]);
    ok_as(&s, nobody, &["get", "--raw", "/openapi/v3"]);
    assert_eq!(
        can_i(&s, nobody, &["create", "selfsubjectaccessreviews"]),
        "yes"
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
