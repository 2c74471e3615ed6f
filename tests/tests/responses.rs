//! What the API server answers with, as clients see it: Prometheus metrics after kubectl traffic, gzip for large responses, PartialObjectMetadata, Table watches (`kubectl get -w`) and watch bookmarks.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use k1s_tests::Server;
use serde_json::Value;

fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    (tmp, server)
}

/// curl as the admin with `args` (before the URL) against `path`.
fn curl(s: &Server, args: &[&str], path: &str) -> Output {
    let tls = s.data_dir.join("tls");
    Command::new("curl")
        .arg("-sS")
        .arg("--cacert")
        .arg(tls.join("ca.crt"))
        .arg("--cert")
        .arg(tls.join("admin.crt"))
        .arg("--key")
        .arg(tls.join("admin.key"))
        .args(args)
        .arg(format!("{}{path}", s.url()))
        .output()
        .expect("running curl")
}

/// GET `path` with `accept`: the status code and the body as JSON.
fn get_json(s: &Server, accept: &str, path: &str) -> (u16, Value) {
    let out = curl(
        s,
        &["-H", &format!("Accept: {accept}"), "-w", "\n%{http_code}"],
        path,
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("a status code");
    let value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (code.trim().parse().unwrap(), value)
}

/// The events of a watch that ends by itself (`timeoutSeconds` in `path`).
fn watch_events(s: &Server, accept: &str, path: &str) -> Vec<Value> {
    let out = curl(s, &["-N", "-H", &format!("Accept: {accept}")], path);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn metrics(s: &Server) -> String {
    s.kubectl_ok(&["get", "--raw", "/metrics"]).unwrap()
}

/// The value of the sample whose line starts with `series` (name and labels), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// Scrape until `check` holds; the scrape it held for. Fails after 20 s.
fn scrape_until(s: &Server, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = metrics(s);
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "never saw {what} in\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const CM: &str = r#"group="",version="v1",resource="configmaps""#;

#[test]
fn metrics_count_kubectl_traffic() {
    let (tmp, s) = server();
    s.kubectl_ok(&["create", "configmap", "app", "--from-literal=mode=dev"])
        .unwrap();
    s.kubectl_ok(&["get", "configmap", "app"]).unwrap();
    s.kubectl_ok(&["get", "configmaps"]).unwrap();
    s.kubectl_ok(&["label", "configmap", "app", "tier=web"])
        .unwrap();
    let manifest = tmp.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  k: v\n",
    )
    .unwrap();
    s.kubectl_ok(&["apply", "--server-side", "-f", manifest.to_str().unwrap()])
        .unwrap();
    s.kubectl_ok(&["delete", "configmap", "app", "--wait=false"])
        .unwrap();
    s.kubectl_ok(&["get", "configmap", "app", "--ignore-not-found"])
        .unwrap();

    let text = metrics(&s);
    let count = |verb: &str, scope: &str, code: u16| {
        let series = format!(
            r#"apiserver_request_total{{verb="{verb}",dry_run="",{CM},subresource="",scope="{scope}",component="apiserver",code="{code}"}}"#
        );
        sample(&text, &series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    // Ours, and the root CA publisher's kube-root-ca.crt in the four initial namespaces.
    assert_eq!(count("POST", "resource", 201), 5.0);
    assert_eq!(count("LIST", "namespace", 200), 1.0);
    assert!(count("GET", "resource", 200) >= 1.0);
    assert!(count("GET", "resource", 404) >= 1.0);
    assert_eq!(count("PATCH", "resource", 200), 1.0);
    assert_eq!(count("APPLY", "resource", 201), 1.0);
    assert_eq!(count("DELETE", "resource", 200), 1.0);

    // Latency histograms with upstream's buckets, cumulative up to the count.
    let histogram = format!(
        r#"apiserver_request_duration_seconds_bucket{{verb="POST",dry_run="",{CM},subresource="",scope="resource",component="apiserver",le="#
    );
    let buckets: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&histogram))
        .collect();
    assert_eq!(buckets.len(), 24, "{text}");
    assert!(buckets[0].starts_with(r#""0.005"}"#), "{buckets:?}");
    assert_eq!(buckets[23], r#""+Inf"} 5"#);
    assert!(text.contains("# TYPE apiserver_request_duration_seconds histogram\n"));

    // Discovery is counted by path; the object counts come from the store.
    assert!(
        text.contains(r#"apiserver_request_total{verb="GET",dry_run="",group="",version="",resource="",subresource="/api",scope="",component="apiserver",code="200"}"#),
        "{text}"
    );
    let stored = s
        .kubectl_ok(&["get", "configmaps", "-A", "-o", "name"])
        .unwrap();
    assert_eq!(
        sample(&text, r#"apiserver_storage_objects{resource="configmaps"}"#),
        Some(stored.lines().count() as f64),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"apiserver_storage_objects{resource="namespaces"}"#),
        Some(4.0)
    );
    assert!(
        sample(
            &text,
            r#"apiserver_storage_objects{resource="leases.coordination.k8s.io"}"#
        )
        .is_some()
    );
    // The scrape itself is a read in flight.
    let reads = sample(
        &text,
        r#"apiserver_current_inflight_requests{request_kind="readOnly"}"#,
    );
    assert!(reads.is_some_and(|n| n >= 1.0), "{reads:?}");
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
        "process_open_fds",
    ] {
        let value = sample(&text, name).unwrap_or_else(|| panic!("no {name}"));
        assert!(value > 0.0, "{name} {value}");
    }

    // The exposition format's content type; and no metrics without a client certificate.
    let out = curl(
        &s,
        &["-o", "/dev/null", "-w", "%{content_type}"],
        "/metrics",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let anonymous = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(s.data_dir.join("tls/ca.crt"))
        .arg(format!("{}/metrics", s.url()))
        .output()
        .unwrap();
    // Anonymous, as upstream: authenticated as `system:anonymous`, then forbidden.
    assert_eq!(String::from_utf8_lossy(&anonymous.stdout), "403");
}

#[test]
fn open_watches_are_long_running_requests() {
    let (_tmp, s) = server();
    let gauge = format!(
        r#"apiserver_longrunning_requests{{verb="WATCH",{CM},subresource="",scope="namespace",component="apiserver"}}"#
    );
    let mut watch = s
        .kubectl()
        .args(["get", "configmaps", "-w"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    scrape_until(&s, "an open watch", |t| sample(t, &gauge) == Some(1.0));
    let _ = watch.kill();
    let _ = watch.wait();
    // Closed, and then counted as one WATCH request.
    let text = scrape_until(&s, "the watch closed", |t| sample(t, &gauge) == Some(0.0));
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"apiserver_request_total{{verb="WATCH",dry_run="",{CM},subresource="",scope="namespace",component="apiserver",code="200"}}"#
            )
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn large_responses_are_gzipped_for_clients_that_ask() {
    let (tmp, s) = server();
    let big = tmp.path().join("big.txt");
    std::fs::write(&big, "x".repeat(100 * 1024)).unwrap();
    let from_file = format!("--from-file=big={}", big.display());
    for name in ["big-1", "big-2"] {
        s.kubectl_ok(&["create", "configmap", name, &from_file])
            .unwrap();
    }
    let headers = tmp.path().join("headers");
    let body = tmp.path().join("body");
    let raw = |path: &str| {
        let out = curl(
            &s,
            &[
                "-H",
                "Accept-Encoding: gzip",
                "-D",
                headers.to_str().unwrap(),
                "-o",
                body.to_str().unwrap(),
            ],
            path,
        );
        assert!(out.status.success(), "{out:?}");
        let headers = std::fs::read_to_string(&headers).unwrap().to_lowercase();
        (headers, std::fs::read(&body).unwrap())
    };

    // More than 128 KiB: compressed, and the bytes on the wire are gzip.
    let (h, bytes) = raw("/api/v1/namespaces/default/configmaps");
    assert!(h.contains("content-encoding: gzip"), "{h}");
    assert!(h.contains("vary: accept-encoding"), "{h}");
    assert_eq!(bytes[..2], [0x1f, 0x8b]);
    assert!(bytes.len() < 100 * 1024, "{} bytes", bytes.len());
    let out = curl(
        &s,
        &["--compressed"],
        "/api/v1/namespaces/default/configmaps",
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The two big ones, then the root CA publisher's kube-root-ca.crt.
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        list["items"][0]["data"]["big"].as_str().unwrap().len(),
        100 * 1024
    );

    // One object of 100 KiB is under the threshold; a watch is never compressed.
    let (h, bytes) = raw("/api/v1/namespaces/default/configmaps/big-1");
    assert!(!h.contains("content-encoding"), "{h}");
    assert_eq!(bytes[0], b'{');
    let (h, bytes) = raw("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1");
    assert!(!h.contains("content-encoding"), "{h}");
    assert_eq!(bytes[0], b'{');
    // Without Accept-Encoding, the plain list.
    let out = curl(
        &s,
        &["-D", "-", "-o", "/dev/null"],
        "/api/v1/namespaces/default/configmaps",
    );
    let h = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(!h.contains("content-encoding"), "{h}");

    // kubectl (Go's transport asks for gzip and decompresses).
    let names = s.kubectl_ok(&["get", "configmaps", "-o", "name"]).unwrap();
    assert_eq!(
        names,
        "configmap/big-1\nconfigmap/big-2\nconfigmap/kube-root-ca.crt\n"
    );
}

const POM: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const POM_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

#[test]
fn partial_object_metadata_on_get_list_and_watch() {
    let (_tmp, s) = server();
    for name in ["a", "b"] {
        s.kubectl_ok(&["create", "configmap", name, "--from-literal=k=v"])
            .unwrap();
    }
    let (code, one) = get_json(&s, POM, "/api/v1/namespaces/default/configmaps/a");
    assert_eq!(code, 200);
    assert_eq!(one["kind"], "PartialObjectMetadata");
    assert_eq!(one["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(one["metadata"]["name"], "a");
    assert!(one["metadata"]["uid"].is_string());
    assert!(one.get("data").is_none(), "{one}");

    let (code, list) = get_json(
        &s,
        &format!("{POM_LIST},application/json"),
        "/api/v1/namespaces/default/configmaps",
    );
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    assert!(list["metadata"]["resourceVersion"].is_string());
    let items = list["items"].as_array().unwrap();
    // a, b and the root CA publisher's kube-root-ca.crt.
    assert_eq!(items.len(), 3);
    assert_eq!(items[1]["kind"], "PartialObjectMetadata");
    assert_eq!(items[1]["metadata"]["name"], "b");
    assert!(items[1].get("data").is_none());

    // The wrong form for the request, or a form the server cannot produce: 406.
    let (code, status) = get_json(&s, POM, "/api/v1/namespaces/default/configmaps");
    assert_eq!(code, 406);
    assert_eq!(status["reason"], "NotAcceptable");
    assert_eq!(
        status["message"],
        "you requested PartialObjectMetadata, but the requested object is a list (*core.ConfigMapList)"
    );
    let (code, status) = get_json(&s, POM_LIST, "/api/v1/namespaces/default/configmaps/a");
    assert_eq!(code, 406);
    assert_eq!(
        status["message"],
        "you requested PartialObjectMetadataList, but the requested object is not a list (*core.ConfigMap)"
    );
    let (code, status) = get_json(
        &s,
        "application/json;as=Widget;g=meta.k8s.io;v=v1",
        "/api/v1/namespaces/default/configmaps/a",
    );
    assert_eq!(code, 406);
    assert_eq!(
        status["message"],
        "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
    );

    // Watch events carry PartialObjectMetadata.
    let events = watch_events(
        &s,
        POM,
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
    );
    assert_eq!(events.len(), 3, "{events:?}");
    for event in &events {
        assert_eq!(event["type"], "ADDED");
        assert_eq!(event["object"]["kind"], "PartialObjectMetadata");
        assert!(event["object"].get("data").is_none());
    }
}

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[test]
fn table_watches_send_column_definitions_first() {
    let (_tmp, s) = server();
    for name in ["a", "b"] {
        s.kubectl_ok(&["create", "configmap", name, "--from-literal=k=v"])
            .unwrap();
    }
    let events = watch_events(
        &s,
        TABLE,
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1",
    );
    // a, b and the root CA publisher's kube-root-ca.crt.
    assert_eq!(events.len(), 3, "{events:?}");
    let first = &events[0]["object"];
    assert_eq!(first["kind"], "Table");
    let columns: Vec<&str> = first["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Data", "Age"]);
    assert_eq!(first["rows"][0]["cells"][0], "a");
    assert_eq!(first["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let second = &events[1]["object"];
    assert_eq!(second["columnDefinitions"], Value::Null);
    assert_eq!(second["rows"][0]["cells"][0], "b");
    assert_eq!(
        second["metadata"]["resourceVersion"],
        second["rows"][0]["object"]["metadata"]["resourceVersion"]
    );

    // includeObject=Object puts the whole object in each row, None nothing.
    let events = watch_events(
        &s,
        TABLE,
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&includeObject=Object",
    );
    assert_eq!(
        events[0]["object"]["rows"][0]["object"]["kind"],
        "ConfigMap"
    );
    assert_eq!(events[0]["object"]["rows"][0]["object"]["data"]["k"], "v");
    let (code, table) = get_json(
        &s,
        TABLE,
        "/api/v1/namespaces/default/configmaps?includeObject=None",
    );
    assert_eq!(code, 200);
    assert_eq!(table["rows"][0]["object"], Value::Null);
    let (code, status) = get_json(
        &s,
        TABLE,
        "/api/v1/namespaces/default/configmaps?includeObject=All",
    );
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "Unable to convert to Table as requested: includeObject: Invalid value: \"All\": must be 'Metadata', 'Object', 'None', or empty"
    );
}

#[test]
fn kubectl_get_watch_wide_prints_later_changes() {
    let (_tmp, s) = server();
    s.kubectl_ok(&["create", "deployment", "first", "--image=nginx:1.27"])
        .unwrap();
    let mut watch = s
        .kubectl()
        .args(["get", "deployments", "-w", "-o", "wide"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the watch printed nothing")
    };
    let header = next();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(next().starts_with("first "));
    // The list is printed; the watch runs from its resourceVersion, so this change is seen.
    s.kubectl_ok(&["create", "deployment", "second", "--image=busybox:1.36"])
        .unwrap();
    let line = loop {
        let line = next();
        if line.starts_with("second ") {
            break line;
        }
    };
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cells[5..],
        ["busybox", "busybox:1.36", "app=second"],
        "{line}"
    );
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn watches_bookmark_just_before_their_timeout() {
    let (_tmp, s) = server();
    s.kubectl_ok(&["create", "configmap", "a", "--from-literal=k=v"])
        .unwrap();
    // A 3 s watch: its bookmark is due 2 s before the end; then the stream closes.
    let events = watch_events(
        &s,
        "application/json",
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=3&allowWatchBookmarks=true",
    );
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    // Ours and the root CA publisher's kube-root-ca.crt.
    assert_eq!(types, ["ADDED", "ADDED", "BOOKMARK"], "{events:?}");
    let bookmark = &events[2]["object"];
    assert_eq!(bookmark["kind"], "ConfigMap");
    assert!(bookmark["metadata"]["resourceVersion"].is_string());
    // Without allowWatchBookmarks, none.
    let events = watch_events(
        &s,
        "application/json",
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=3",
    );
    assert_eq!(events.len(), 2, "{events:?}");
}
