//! Services as kubectl users meet them: the `kubernetes` service, ClusterIP and NodePort allocation and release, immutability, printer columns; and events written through one events API and read through the other.

use k1s_tests::Server;

fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    (tmp, server)
}

fn apply(s: &Server, yaml: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifest.yaml");
    std::fs::write(&path, yaml).unwrap();
    let path = path.display().to_string();
    match s.kubectl_ok(&["apply", "-f", &path]) {
        Ok(out) => Ok(out),
        Err(e) => Err(e.to_string()),
    }
}

fn jsonpath(s: &Server, what: &[&str], path: &str) -> String {
    let template = format!("jsonpath={path}");
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", &template]);
    s.kubectl_ok(&args).unwrap()
}

#[test]
fn the_kubernetes_service_points_at_the_server() {
    let (_tmp, s) = server();
    let port = s.url().rsplit(':').next().unwrap().to_string();
    assert_eq!(
        jsonpath(
            &s,
            &["svc", "kubernetes"],
            "{.spec.clusterIP} {.spec.ports[0].name} {.spec.ports[0].port} {.spec.ports[0].targetPort}"
        ),
        format!("10.43.0.1 https 443 {port}")
    );
    assert_eq!(
        jsonpath(
            &s,
            &["endpoints", "kubernetes"],
            "{.subsets[0].ports[0].port}"
        ),
        port
    );
    assert_eq!(
        jsonpath(
            &s,
            &["endpointslices", "kubernetes"],
            "{.metadata.labels.kubernetes\\.io/service-name} {.addressType} {.ports[0].port}"
        ),
        format!("kubernetes IPv4 {port}")
    );
}

#[test]
fn cluster_ips_and_node_ports_are_allocated_refused_and_released() {
    let (_tmp, s) = server();
    let web = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n  - {name: https, port: 443, nodePort: 30443}\n";
    apply(&s, web).unwrap();
    let ip = jsonpath(&s, &["svc", "web"], "{.spec.clusterIP}");
    assert!(ip.starts_with("10.43."), "{ip}");
    assert_ne!(ip, "10.43.0.1");
    let ports = jsonpath(&s, &["svc", "web"], "{.spec.ports[*].nodePort}");
    let ports: Vec<u16> = ports.split(' ').map(|p| p.parse().unwrap()).collect();
    assert_eq!(ports[1], 30443);
    assert!((30000..=32767).contains(&ports[0]), "{ports:?}");
    assert_eq!(
        jsonpath(
            &s,
            &["svc", "web"],
            "{.spec.ports[0].protocol} {.spec.ports[1].targetPort} {.spec.ipFamilies} {.spec.ipFamilyPolicy} {.spec.externalTrafficPolicy}"
        ),
        "TCP 443 [\"IPv4\"] SingleStack Cluster"
    );

    // Taken addresses and ports are refused with upstream's messages.
    let clash = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: clash}}\nspec:\n  clusterIP: {ip}\n  ports: [{{port: 80}}]\n"
    );
    let err = apply(&s, &clash).unwrap_err();
    assert!(
        err.contains(&format!(
            "spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
        )),
        "{err}"
    );
    let err = apply(&s, "apiVersion: v1\nkind: Service\nmetadata: {name: clash}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 30443}]\n").unwrap_err();
    assert!(
        err.contains(
            "spec.ports[0].nodePort: Invalid value: 30443: provided port is already allocated"
        ),
        "{err}"
    );
    let err = apply(&s, "apiVersion: v1\nkind: Service\nmetadata: {name: clash}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 80}]\n").unwrap_err();
    assert!(
        err.contains(
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        ),
        "{err}"
    );
    let err = apply(&s, "apiVersion: v1\nkind: Service\nmetadata: {name: clash}\nspec:\n  clusterIP: 10.99.0.5\n  ports: [{port: 80}]\n").unwrap_err();
    assert!(
        err.contains("The range of valid IPs is 10.43.0.0/16"),
        "{err}"
    );

    // The cluster IP cannot change.
    let err = s
        .kubectl_err(&[
            "patch",
            "svc",
            "web",
            "--type=merge",
            "-p",
            r#"{"spec":{"clusterIP":"10.43.9.9","clusterIPs":["10.43.9.9"]}}"#,
        ])
        .unwrap();
    assert!(err.contains("may not change once set"), "{err}");

    // Printer columns, wide.
    let wide = s.kubectl_ok(&["get", "svc", "web", "-o", "wide"]).unwrap();
    let mut lines = wide.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..5],
        [
            "web",
            "NodePort",
            ip.as_str(),
            "<none>",
            &format!("80:{}/TCP,443:30443/TCP", ports[0])
        ]
    );
    assert_eq!(row[6], "app=web");

    // Back to ClusterIP: node ports go and are free again.
    s.kubectl_ok(&[
        "patch",
        "svc",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"ClusterIP","ports":[{"name":"http","port":80,"targetPort":8080},{"name":"https","port":443}]}}"#,
    ])
    .unwrap();
    assert_eq!(
        jsonpath(&s, &["svc", "web"], "{.spec.ports[*].nodePort}"),
        ""
    );
    apply(&s, "apiVersion: v1\nkind: Service\nmetadata: {name: np}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 30443}]\n").unwrap();

    // Deleting frees the address for a new service.
    s.kubectl_ok(&["delete", "svc", "web"]).unwrap();
    apply(&s, &clash).unwrap();
    assert_eq!(jsonpath(&s, &["svc", "clash"], "{.spec.clusterIP}"), ip);

    // Headless and ExternalName services get no address.
    apply(&s, "apiVersion: v1\nkind: Service\nmetadata: {name: headless}\nspec:\n  clusterIP: None\n  selector: {app: db}\n  ports: [{port: 5432}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec:\n  type: ExternalName\n  externalName: example.com\n").unwrap();
    let out = s.kubectl_ok(&["get", "svc", "headless", "ext"]).unwrap();
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..5],
        ["headless", "ClusterIP", "None", "<none>", "5432/TCP"]
    );
    assert_eq!(
        rows[1][..5],
        ["ext", "ExternalName", "<none>", "example.com", "<none>"]
    );
}

#[test]
fn allocations_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(data.clone(), &[]).unwrap();
    apply(&s, "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n").unwrap();
    let ip = jsonpath(&s, &["svc", "web"], "{.spec.clusterIP}");
    s.stop().unwrap();
    let s = Server::start(data, &[]).unwrap();
    let clash = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: clash}}\nspec:\n  clusterIP: {ip}\n  ports: [{{port: 80}}]\n"
    );
    let err = apply(&s, &clash).unwrap_err();
    assert!(err.contains("provided IP is already allocated"), "{err}");
    let err = apply(&s, "apiVersion: v1\nkind: Service\nmetadata: {name: clash}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n").unwrap_err();
    assert!(err.contains("provided port is already allocated"), "{err}");
}

#[test]
fn events_are_shared_between_both_apis() {
    let (_tmp, s) = server();
    apply(&s, "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: new-api}\neventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: k1s.io/test\nreportingInstance: node-1\naction: Testing\nreason: Tested\ntype: Normal\nnote: written through events.k8s.io\nregarding: {kind: Pod, name: p1, namespace: default}\n").unwrap();
    apply(&s, "apiVersion: v1\nkind: Event\nmetadata: {name: old-api}\ninvolvedObject: {kind: Pod, name: p2, namespace: default}\nreason: Started\nmessage: written through core\ntype: Warning\nsource: {component: kubelet, host: node-1}\ncount: 3\n").unwrap();

    assert_eq!(
        jsonpath(
            &s,
            &["events.v1.events.k8s.io", "old-api"],
            "{.regarding.name} {.note} {.deprecatedSource.component} {.deprecatedCount}"
        ),
        "p2 written through core kubelet 3"
    );
    assert_eq!(
        jsonpath(
            &s,
            &["events.v1.", "new-api"],
            "{.involvedObject.name} {.message} {.reportingComponent} {.reportingInstance}"
        ),
        "p1 written through events.k8s.io k1s.io/test node-1"
    );
    let selected = s
        .kubectl_ok(&[
            "get",
            "events.v1.events.k8s.io",
            "--field-selector",
            "regarding.name=p1",
            "-o",
            "name",
        ])
        .unwrap();
    assert_eq!(selected.trim(), "event.events.k8s.io/new-api");
    let selected = s
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=p1",
            "-o",
            "name",
        ])
        .unwrap();
    assert_eq!(selected.trim(), "event/new-api");
    let err = apply(
        &s,
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: bad}\ntype: Normal\n",
    )
    .unwrap_err();
    assert!(err.contains("eventTime: Required value"), "{err}");
}
