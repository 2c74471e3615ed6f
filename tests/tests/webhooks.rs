//! Admission webhooks end to end: a real HTTPS webhook server in this test process (its own CA, reached by URL or through a Service the apiserver resolves), configured with kubectl; a validating webhook rejects a pod, a mutating one labels pods, failurePolicy Fail vs Ignore when a webhook is down.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k1s_tests::Server;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Calls of the webhook that never patches (to see it reinvoked).
static NOOP_CALLS: AtomicUsize = AtomicUsize::new(0);

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a serving certificate for `hook.webhooks.svc` and 127.0.0.1: (ca, cert, key) PEM.
fn certificates(dir: &Path) -> (String, String, String) {
    let p = |f: &str| dir.join(f).display().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.crt"),
        "-days",
        "1",
        "-subj",
        "/CN=webhook-ca",
    ]);
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &p("hook.key"),
        "-out",
        &p("hook.csr"),
        "-subj",
        "/CN=hook.webhooks.svc",
    ]);
    std::fs::write(
        dir.join("hook.ext"),
        "subjectAltName=DNS:hook.webhooks.svc,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("hook.csr"),
        "-CA",
        &p("ca.crt"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &p("hook.ext"),
        "-out",
        &p("hook.crt"),
    ]);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    (read("ca.crt"), read("hook.crt"), read("hook.key"))
}

/// The webhook's answer to one AdmissionReview at `path`.
fn answer(path: &str, review: &Value) -> Value {
    let request = &review["request"];
    let uid = request["uid"].clone();
    let labels = &request["object"]["metadata"]["labels"];
    let response = match path {
        "/validate" if labels["deny"] == "true" => json!({
            "uid": uid, "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": "pods labelled deny=true are refused"},
        }),
        "/validate" => {
            json!({"uid": uid, "allowed": true, "warnings": ["checked by the test webhook"]})
        }
        "/noop" => {
            NOOP_CALLS.fetch_add(1, Ordering::SeqCst);
            json!({"uid": uid, "allowed": true})
        }
        "/mutate" => {
            let patch = if labels.is_object() {
                json!([{"op": "add", "path": "/metadata/labels/mutated-by", "value": "webhook"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "webhook"}}])
            };
            json!({
                "uid": uid, "allowed": true, "patchType": "JSONPatch",
                "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string()),
            })
        }
        _ => json!({"uid": uid, "allowed": false}),
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Serve the webhook over TLS on 127.0.0.1; returns its port.
fn serve(cert: &str, key: &str) -> u16 {
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        |req: hyper::Request<hyper::body::Incoming>| async move {
                            let path = req.uri().path().to_string();
                            if path == "/slow" {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                            }
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let review: Value =
                                serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let out = serde_json::to_vec(&answer(&path, &review)).unwrap();
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(out)))
                                    .unwrap(),
                            )
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    port
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

fn kubectl(s: &Server, args: &[&str]) -> (bool, String, String) {
    let out = s.kubectl().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Retry `check` until it holds (a configuration takes effect once the cache has it).
fn eventually(what: &str, mut check: impl FnMut() -> Option<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pod_yaml(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n"
    )
}

#[test]
fn webhooks_reject_mutate_and_follow_their_failure_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    let dir = tmp.path();
    let (ca, cert, key) = certificates(dir);
    let port = serve(&cert, &key);
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&ca);

    // The validating webhook is reached through a Service the apiserver resolves itself to
    // its Endpoints (no selector: the endpoints are this test process).
    s.kubectl_ok(&["create", "namespace", "webhooks"]).unwrap();
    let service = write(
        dir,
        "service.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: hook, namespace: webhooks}}\nspec:\n  ports: [{{name: https, port: 443, targetPort: {port}}}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: hook, namespace: webhooks}}\nsubsets:\n- addresses: [{{ip: 127.0.0.1}}]\n  ports: [{{name: https, port: {port}}}]\n"
        ),
    );
    s.kubectl_ok(&["create", "-f", &service]).unwrap();
    let validating = write(
        dir,
        "validating.yaml",
        &format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: deny}}\nwebhooks:\n- name: deny.k1s.test\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  clientConfig:\n    service: {{name: hook, namespace: webhooks, path: /validate}}\n    caBundle: {ca_bundle}\n  rules: [{{operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [pods]}}]\n  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: default}}}}\n"
        ),
    );
    s.kubectl_ok(&["create", "-f", &validating]).unwrap();
    let out = s
        .kubectl_ok(&["get", "validatingwebhookconfigurations"])
        .unwrap();
    assert!(out.starts_with("NAME   WEBHOOKS   AGE\ndeny   1"), "{out}");
    let defaulted = s
        .kubectl_ok(&[
            "get",
            "validatingwebhookconfiguration",
            "deny",
            "-o",
            "jsonpath={.webhooks[0].failurePolicy} {.webhooks[0].timeoutSeconds} {.webhooks[0].clientConfig.service.port}",
        ])
        .unwrap();
    assert_eq!(defaulted, "Fail 10 443");

    let denied = write(dir, "denied.yaml", &pod_yaml("denied", "deny: \"true\""));
    let err = eventually("the validating webhook to reject", || {
        let (ok, _, err) = kubectl(&s, &["create", "-f", &denied, "--dry-run=server"]);
        (!ok).then_some(err)
    });
    assert!(
        err.contains("Error from server (Forbidden): error when creating \"")
            && err.contains(
                "admission webhook \"deny.k1s.test\" denied the request: pods labelled deny=true are refused"
            ),
        "{err}"
    );
    // An allowed pod passes with the webhook's warning.
    let fine = write(dir, "fine.yaml", &pod_yaml("fine", "app: a"));
    let (ok, _, err) = kubectl(&s, &["create", "-f", &fine]);
    assert!(ok, "{err}");
    assert!(
        err.contains("Warning: checked by the test webhook"),
        "{err}"
    );
    // Outside the namespace selector the webhook is not called.
    s.kubectl_ok(&["create", "namespace", "elsewhere"]).unwrap();
    let (ok, _, err) = kubectl(
        &s,
        &[
            "create",
            "-f",
            &denied,
            "-n",
            "elsewhere",
            "--dry-run=server",
        ],
    );
    assert!(ok, "{err}");

    // The mutating webhook, by URL, labels every new pod.
    let mutating = write(
        dir,
        "mutating.yaml",
        &format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: label}}\nwebhooks:\n- name: label.k1s.test\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  clientConfig:\n    url: https://127.0.0.1:{port}/mutate\n    caBundle: {ca_bundle}\n  rules: [{{operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [pods]}}]\n"
        ),
    );
    s.kubectl_ok(&["create", "-f", &mutating]).unwrap();
    // A webhook sorted before it, reinvocationPolicy IfNeeded: called again after the label
    // webhook changed the object.
    let noop = write(
        dir,
        "noop.yaml",
        &format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {{name: a-noop}}\nwebhooks:\n- name: noop.k1s.test\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  reinvocationPolicy: IfNeeded\n  clientConfig:\n    url: https://127.0.0.1:{port}/noop\n    caBundle: {ca_bundle}\n  rules: [{{operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [pods]}}]\n  objectSelector: {{matchLabels: {{app: b}}}}\n"
        ),
    );
    s.kubectl_ok(&["create", "-f", &noop]).unwrap();
    let labelled = write(dir, "labelled.yaml", &pod_yaml("labelled", "app: b"));
    let label = eventually("the mutating webhook to label", || {
        let out = s
            .kubectl_ok(&[
                "create",
                "-f",
                &labelled,
                "--dry-run=server",
                "-o",
                "jsonpath={.metadata.labels.mutated-by}",
            ])
            .unwrap();
        (!out.is_empty()).then_some(out)
    });
    assert_eq!(label, "webhook");
    eventually("both mutating webhooks to be in effect", || {
        let before = NOOP_CALLS.load(Ordering::SeqCst);
        s.kubectl_ok(&["create", "-f", &labelled, "--dry-run=server"])
            .unwrap();
        (NOOP_CALLS.load(Ordering::SeqCst) > before).then_some(String::new())
    });
    let before = NOOP_CALLS.load(Ordering::SeqCst);
    s.kubectl_ok(&["create", "-f", &labelled]).unwrap();
    assert_eq!(
        NOOP_CALLS.load(Ordering::SeqCst) - before,
        2,
        "the IfNeeded webhook runs again after a later webhook mutated"
    );
    let stored = s
        .kubectl_ok(&[
            "get",
            "pod",
            "labelled",
            "-o",
            "jsonpath={.metadata.labels}",
        ])
        .unwrap();
    assert_eq!(stored, r#"{"app":"b","mutated-by":"webhook"}"#);

    // A webhook that is down: Fail refuses the request, Ignore lets it through. Its object
    // selector keeps it to pods labelled probe=down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let down = |policy: &str| {
        write(
            dir,
            "down.yaml",
            &format!(
                "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: down}}\nwebhooks:\n- name: down.k1s.test\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  failurePolicy: {policy}\n  timeoutSeconds: 2\n  clientConfig:\n    url: https://127.0.0.1:{dead}/validate\n    caBundle: {ca_bundle}\n  rules: [{{operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [pods]}}]\n  objectSelector: {{matchLabels: {{probe: down}}}}\n"
            ),
        )
    };
    s.kubectl_ok(&["apply", "-f", &down("Fail")]).unwrap();
    let probe = write(dir, "probe.yaml", &pod_yaml("probe", "probe: down"));
    let err = eventually("the unreachable webhook to fail the request", || {
        let (ok, _, err) = kubectl(&s, &["create", "-f", &probe, "--dry-run=server"]);
        (!ok).then_some(err)
    });
    assert!(
        err.contains(&format!(
            "Internal error occurred: failed calling webhook \"down.k1s.test\": Post \"https://127.0.0.1:{dead}/validate?timeout=2s\": dial tcp 127.0.0.1:{dead}: connect: connection refused"
        )),
        "{err}"
    );
    s.kubectl_ok(&["apply", "-f", &down("Ignore")]).unwrap();
    eventually("failurePolicy Ignore to let the pod in", || {
        let (ok, _, _) = kubectl(&s, &["create", "-f", &probe]);
        ok.then_some(String::new())
    });

    // A webhook slower than its timeout fails the request with the deadline.
    let slow = write(
        dir,
        "slow.yaml",
        &format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: slow}}\nwebhooks:\n- name: slow.k1s.test\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  timeoutSeconds: 1\n  clientConfig:\n    url: https://127.0.0.1:{port}/slow\n    caBundle: {ca_bundle}\n  rules: [{{operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [configmaps]}}]\n"
        ),
    );
    s.kubectl_ok(&["create", "-f", &slow]).unwrap();
    let err = eventually("the slow webhook to time out", || {
        let (ok, _, err) = kubectl(&s, &["create", "configmap", "late", "--dry-run=server"]);
        (!ok).then_some(err)
    });
    assert!(
        err.contains(&format!(
            "failed calling webhook \"slow.k1s.test\": Post \"https://127.0.0.1:{port}/slow?timeout=1s\": context deadline exceeded"
        )),
        "{err}"
    );
    s.kubectl_ok(&["delete", "validatingwebhookconfiguration", "slow"])
        .unwrap();

    // A configuration the API refuses, with upstream's messages.
    let bad = write(
        dir,
        "bad.yaml",
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: bad}\nwebhooks:\n- name: short\n  admissionReviewVersions: [v1]\n  sideEffects: Some\n  clientConfig: {url: \"http://x\"}\n",
    );
    let (ok, _, err) = kubectl(&s, &["create", "-f", &bad]);
    assert!(!ok);
    for want in [
        "webhooks[0].name: Invalid value: \"short\": should be a domain with at least three segments separated by dots",
        "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
        "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
    ] {
        assert!(err.contains(want), "missing {want}: {err}");
    }
    // The configurations themselves are never sent to webhooks, so a broken one can be removed.
    s.kubectl_ok(&["delete", "validatingwebhookconfiguration", "down", "deny"])
        .unwrap();
    s.kubectl_ok(&["delete", "mutatingwebhookconfiguration", "label"])
        .unwrap();
}
