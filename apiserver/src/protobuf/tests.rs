//! Tests of the protobuf decoder: kubectl's own request bodies against the JSON kubectl sends for the same command, and hand-built messages for what kubectl's generators never set.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::*;
use crate::registry;

fn envelope(kind: &str, api_version: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn quantity(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

fn int_or_string(v: Value) -> Option<IntOrString> {
    Some(match v {
        Value::String(text) => IntOrString {
            r#type: Some(1),
            int_val: Some(0),
            str_val: Some(text),
        },
        v => IntOrString {
            r#type: Some(0),
            int_val: v.as_i64().and_then(|n| i32::try_from(n).ok()),
            str_val: s(""),
        },
    })
}

/// ObjectMeta as Go marshals it: every non-pointer field written, zero or not.
fn object_meta(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    })
}

/// Decodes `message` framed as `kind` in `api_version` and compares it with `expected`.
fn check(kind: &str, api_version: &str, message: impl prost::Message, expected: Value) {
    let body = envelope(kind, api_version, message.encode_to_vec());
    let got = decode_object(&body).unwrap_or_else(|e| panic!("{kind}: {}", e.message));
    assert_eq!(
        got,
        expected,
        "{kind}: got\n{}\nwant\n{}",
        serde_json::to_string_pretty(&got).unwrap_or_default(),
        serde_json::to_string_pretty(&expected).unwrap_or_default()
    );
}

/// `null` members removed: Go's JSON writes a zero `metav1.Time` as `null`, which every decoder
/// reads as absent and which the protobuf decoder leaves out.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        v => v,
    }
}

fn testdata(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/protobuf/testdata")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Bodies captured from kubectl 1.33 (`kubectl create …` against a recording server), compared
/// with `kubectl create … --dry-run=client -o json`, the object kubectl would send as JSON.
#[test]
fn kubectl_create_bodies_decode_to_the_json_kubectl_would_send() {
    for name in [
        "namespace",
        "configmap",
        "secret",
        "secret-docker-registry",
        "serviceaccount",
        "service",
        "service-nodeport",
        "deployment",
        "job",
        "cronjob",
        "role",
        "rolebinding",
        "clusterrole",
        "clusterrolebinding",
        "quota",
        "priorityclass",
        "pdb",
        "pdb-int",
    ] {
        let body = testdata(&format!("{name}.bin"));
        let want: Value = serde_json::from_slice(&testdata(&format!("{name}.json")))
            .unwrap_or_else(|e| panic!("{name}.json: {e}"));
        let got = decode_object(&body).unwrap_or_else(|e| panic!("{name}: {}", e.message));
        let want = without_nulls(want);
        assert_eq!(
            got,
            want,
            "{name}: got\n{}\nwant\n{}",
            serde_json::to_string_pretty(&got).unwrap_or_default(),
            serde_json::to_string_pretty(&want).unwrap_or_default()
        );
    }
}

/// The auth helpers' bodies (`create token`, `auth can-i [--list]`, `auth whoami`), which have no
/// `--dry-run`: the JSON is what Go's JSON writes for the same objects.
#[test]
fn kubectl_auth_bodies_decode() {
    let cases = [
        (
            "token",
            json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {}, "spec": {"audiences": ["foo"], "expirationSeconds": 600},
                "status": {"token": ""}}),
        ),
        (
            "can-i",
            json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                "metadata": {}, "spec": {"resourceAttributes": {"namespace": "default",
                    "verb": "create", "resource": "pods"}},
                "status": {"allowed": false}}),
        ),
        (
            "can-i-list",
            json!({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
                "metadata": {}, "spec": {"namespace": "default"},
                "status": {"resourceRules": null, "nonResourceRules": null, "incomplete": false}}),
        ),
        (
            "whoami",
            json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {}, "status": {"userInfo": {}}}),
        ),
    ];
    for (name, want) in cases {
        let got = decode_object(&testdata(&format!("{name}.bin")))
            .unwrap_or_else(|e| panic!("{name}: {}", e.message));
        let want = without_nulls(want);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn decodes_a_configmap_as_kubectl_sends_it() {
    let cm = core::ConfigMap {
        metadata: Some(meta::ObjectMeta {
            name: Some("c".into()),
            ..Default::default()
        }),
        data: [("a".to_string(), "1".to_string())].into(),
        binary_data: [("b".to_string(), vec![0u8, 1, 2])].into(),
        ..Default::default()
    };
    let body = envelope("ConfigMap", "v1", cm.encode_to_vec());
    let got = decode(registry::find("", "v1", "configmaps").unwrap(), &body).unwrap();
    assert_eq!(
        got,
        json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"b": "AAEC"}, "kind": "ConfigMap", "apiVersion": "v1"})
    );
}

#[test]
fn the_resource_stands_in_for_a_missing_type_meta() {
    let ns = core::Namespace {
        metadata: object_meta("n"),
        ..Default::default()
    };
    let mut body = MAGIC.to_vec();
    body.extend(
        Unknown {
            raw: Some(ns.encode_to_vec()),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let namespaces = registry::find("", "v1", "namespaces").unwrap();
    assert_eq!(
        decode(namespaces, &body).unwrap(),
        json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "n"}})
    );
    assert_eq!(decode_object(&body).unwrap_err().code.as_u16(), 400);
}

#[test]
fn garbage_is_a_bad_request_and_unknown_kinds_are_415() {
    let cm = registry::find("", "v1", "configmaps").unwrap();
    let status = |body: &[u8]| decode(cm, body).unwrap_err().code.as_u16();
    assert_eq!(status(b"nope"), 400);
    assert_eq!(status(b"k8s\0\xff\xff\xff"), 400);
    assert_eq!(status(&envelope("Widget", "example.com/v1", vec![])), 415);
    assert_eq!(status(&envelope("Widget", "v1", vec![])), 415);
    assert_eq!(status(&envelope("ConfigMap", "v1/v2/v3", vec![])), 415);
    // A configmap whose metadata claims more bytes than there are.
    let err = decode(cm, &envelope("ConfigMap", "v1", vec![0x0a, 0x7f, 0x0a])).unwrap_err();
    assert_eq!(err.code.as_u16(), 400);
    assert!(
        err.message
            .starts_with("error decoding protobuf request body: "),
        "{}",
        err.message
    );
    // A number where a message belongs, a group wire type, field number 0, a varint longer
    // than ten bytes, a map entry whose key overruns it.
    for raw in [
        vec![0x08, 0x01],
        vec![0x0b],
        vec![0x02, 0x00],
        vec![0x0a; 12],
        vec![0x12, 0x03, 0x0a, 0x05, 0x00],
    ] {
        assert_eq!(status(&envelope("ConfigMap", "v1", raw)), 400);
    }
}

#[test]
fn nesting_is_bounded() {
    // A JSONSchemaProps holding itself under `not` (field 28) a thousand times.
    let mut raw = Vec::new();
    for _ in 0..1000 {
        let mut outer = vec![0xe2, 0x01]; // field 28, length-delimited
        prost::encoding::encode_varint(raw.len() as u64, &mut outer);
        outer.extend(raw);
        raw = outer;
    }
    let spec = |schema: Vec<u8>| {
        // CustomResourceDefinition.spec(2).versions(7).schema(4).openAPIV3Schema(1)
        let wrap = |tag: u8, inner: Vec<u8>| {
            let mut out = vec![tag << 3 | 2];
            prost::encoding::encode_varint(inner.len() as u64, &mut out);
            out.extend(inner);
            out
        };
        wrap(2, wrap(7, wrap(4, wrap(1, schema))))
    };
    let err = decode_raw(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &spec(raw),
    )
    .unwrap_err();
    assert_eq!(err.code.as_u16(), 400);
    assert!(err.message.contains("nested deeper"), "{}", err.message);
}

#[test]
fn the_table_is_sorted_and_its_references_resolve() {
    let lower = |s: &str| s.to_ascii_lowercase();
    for pair in schema::MESSAGES.windows(2) {
        assert!(
            lower(pair[0].name) < lower(pair[1].name),
            "{}",
            pair[1].name
        );
    }
    for message in schema::MESSAGES {
        for field in message.fields {
            if let Ty::Msg(i) | Ty::MapMsg(i) = field.ty {
                assert!(usize::from(i) < schema::MESSAGES.len(), "{}", message.name);
            }
        }
    }
    for (api_version, kind) in [
        ("v1", "Pod"),
        ("apps/v1", "Deployment"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("apiregistration.k8s.io/v1", "APIService"),
        ("storage.k8s.io/v1", "CSIDriver"),
        ("networking.k8s.io/v1", "IPAddress"),
        ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema"),
        ("internal.apiserver.k8s.io/v1alpha1", "StorageVersion"),
        ("policy/v1", "Eviction"),
        ("autoscaling/v1", "Scale"),
    ] {
        assert!(find(api_version, kind).is_some(), "{kind} in {api_version}");
    }
}

/// A Deployment with the parts of a pod template kubectl's generator never fills in.
#[test]
fn deployment_with_a_full_pod_template() {
    let container = core::Container {
        name: s("app"),
        image: s("nginx:1.27"),
        command: vec!["nginx".into()],
        args: vec!["-g".into(), "daemon off;".into()],
        working_dir: s(""),
        ports: vec![core::ContainerPort {
            name: s("http"),
            host_port: Some(0),
            container_port: Some(80),
            protocol: s("TCP"),
            host_ip: s(""),
        }],
        env: vec![
            core::EnvVar {
                name: s("MODE"),
                value: s("prod"),
                value_from: None,
            },
            core::EnvVar {
                name: s("EMPTY"),
                value: s(""),
                value_from: None,
            },
            core::EnvVar {
                name: s("PASSWORD"),
                value: s(""),
                value_from: Some(core::EnvVarSource {
                    secret_key_ref: Some(core::SecretKeySelector {
                        local_object_reference: Some(core::LocalObjectReference { name: s("db") }),
                        key: s("password"),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
        ],
        resources: Some(core::ResourceRequirements {
            limits: [
                ("cpu".to_string(), quantity("500m")),
                ("memory".to_string(), quantity("128Mi")),
            ]
            .into(),
            requests: [("cpu".to_string(), quantity("250m"))].into(),
            claims: vec![],
        }),
        liveness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: s("/healthz"),
                    port: int_or_string(json!(8080)),
                    host: s(""),
                    scheme: s("HTTP"),
                    http_headers: vec![],
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(0),
            timeout_seconds: Some(1),
            period_seconds: Some(10),
            success_threshold: Some(1),
            failure_threshold: Some(3),
            termination_grace_period_seconds: None,
        }),
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                tcp_socket: Some(core::TcpSocketAction {
                    port: int_or_string(json!("http")),
                    host: s(""),
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(5),
            timeout_seconds: Some(0),
            period_seconds: Some(0),
            success_threshold: Some(0),
            failure_threshold: Some(0),
            termination_grace_period_seconds: Some(0),
        }),
        volume_mounts: vec![core::VolumeMount {
            name: s("config"),
            read_only: Some(true),
            mount_path: s("/etc/nginx"),
            sub_path: s(""),
            mount_propagation: None,
            sub_path_expr: s(""),
            recursive_read_only: None,
        }],
        termination_message_path: s("/dev/termination-log"),
        image_pull_policy: s("IfNotPresent"),
        security_context: Some(core::SecurityContext {
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            privileged: Some(false),
            ..Default::default()
        }),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    };
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            labels: [("app".to_string(), "web".to_string())].into(),
            annotations: [("note".to_string(), String::new())].into(),
            ..object_meta("web").unwrap()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: [("app".to_string(), "web".to_string())].into(),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("Exists"),
                    values: vec![],
                }],
            }),
            template: Some(core::PodTemplateSpec {
                metadata: Some(meta::ObjectMeta {
                    labels: [("app".to_string(), "web".to_string())].into(),
                    ..object_meta("").unwrap()
                }),
                spec: Some(core::PodSpec {
                    volumes: vec![
                        core::Volume {
                            name: s("config"),
                            volume_source: Some(core::VolumeSource {
                                config_map: Some(core::ConfigMapVolumeSource {
                                    local_object_reference: Some(core::LocalObjectReference {
                                        name: s("nginx-conf"),
                                    }),
                                    items: vec![],
                                    default_mode: Some(0o644),
                                    optional: None,
                                }),
                                ..Default::default()
                            }),
                        },
                        core::Volume {
                            name: s("scratch"),
                            volume_source: Some(core::VolumeSource {
                                empty_dir: Some(core::EmptyDirVolumeSource {
                                    medium: s(""),
                                    size_limit: Some(quantity("1Gi")),
                                }),
                                ..Default::default()
                            }),
                        },
                    ],
                    containers: vec![container],
                    restart_policy: s("Always"),
                    termination_grace_period_seconds: Some(0),
                    dns_policy: s("ClusterFirst"),
                    service_account_name: s(""),
                    automount_service_account_token: Some(false),
                    node_name: s(""),
                    host_network: Some(false),
                    host_pid: Some(false),
                    host_ipc: Some(false),
                    security_context: Some(core::PodSecurityContext::default()),
                    hostname: s(""),
                    subdomain: s(""),
                    scheduler_name: s("default-scheduler"),
                    priority_class_name: s(""),
                    tolerations: vec![core::Toleration {
                        key: s(""),
                        operator: s("Exists"),
                        value: s(""),
                        effect: s(""),
                        toleration_seconds: Some(0),
                    }],
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: int_or_string(json!(0)),
                    max_surge: int_or_string(json!("25%")),
                }),
            }),
            min_ready_seconds: Some(0),
            revision_history_limit: Some(0),
            paused: Some(false),
            progress_deadline_seconds: Some(600),
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            terminating_replicas: None,
            conditions: vec![],
            collision_count: None,
        }),
    };
    check(
        "Deployment",
        "apps/v1",
        deployment,
        json!({
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"note": ""}},
            "spec": {
                "replicas": 0,
                "selector": {
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "Exists"}]
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "volumes": [
                            {"name": "config", "configMap": {"name": "nginx-conf", "defaultMode": 420}},
                            {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}
                        ],
                        "containers": [{
                            "name": "app",
                            "image": "nginx:1.27",
                            "command": ["nginx"],
                            "args": ["-g", "daemon off;"],
                            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                            "env": [
                                {"name": "MODE", "value": "prod"},
                                {"name": "EMPTY"},
                                {"name": "PASSWORD", "valueFrom": {"secretKeyRef":
                                    {"name": "db", "key": "password", "optional": false}}}
                            ],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": "250m"}
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                                "timeoutSeconds": 1,
                                "periodSeconds": 10,
                                "successThreshold": 1,
                                "failureThreshold": 3
                            },
                            "readinessProbe": {
                                "tcpSocket": {"port": "http"},
                                "initialDelaySeconds": 5,
                                "terminationGracePeriodSeconds": 0
                            },
                            "volumeMounts": [
                                {"name": "config", "readOnly": true, "mountPath": "/etc/nginx"}
                            ],
                            "terminationMessagePath": "/dev/termination-log",
                            "imagePullPolicy": "IfNotPresent",
                            "securityContext": {
                                "privileged": false,
                                "runAsUser": 0,
                                "runAsNonRoot": false
                            }
                        }],
                        "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 0,
                        "dnsPolicy": "ClusterFirst",
                        "automountServiceAccountToken": false,
                        "securityContext": {},
                        "schedulerName": "default-scheduler",
                        "tolerations": [{"operator": "Exists", "tolerationSeconds": 0}]
                    }
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}
                },
                "revisionHistoryLimit": 0,
                "progressDeadlineSeconds": 600
            },
            "status": {}
        }),
    );
}

#[test]
fn job_keeps_its_pointer_zeros() {
    let job = batch::Job {
        metadata: object_meta("once"),
        spec: Some(batch::JobSpec {
            parallelism: Some(0),
            completions: Some(1),
            active_deadline_seconds: Some(30),
            backoff_limit: Some(0),
            ttl_seconds_after_finished: Some(0),
            suspend: Some(false),
            template: Some(core::PodTemplateSpec {
                metadata: object_meta(""),
                spec: Some(core::PodSpec {
                    containers: vec![core::Container {
                        name: s("c"),
                        image: s("busybox"),
                        ..Default::default()
                    }],
                    restart_policy: s("Never"),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: Some(batch::JobStatus {
            active: Some(0),
            succeeded: Some(0),
            failed: Some(0),
            ..Default::default()
        }),
    };
    check(
        "Job",
        "batch/v1",
        job,
        json!({"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "once"},
            "spec": {"parallelism": 0, "completions": 1, "activeDeadlineSeconds": 30,
                "backoffLimit": 0, "ttlSecondsAfterFinished": 0, "suspend": false,
                "template": {"metadata": {}, "spec": {
                    "containers": [{"name": "c", "image": "busybox"}],
                    "restartPolicy": "Never"}}},
            "status": {}}),
    );
}

#[test]
fn service_ports_and_pointer_booleans() {
    let service = core::Service {
        metadata: object_meta("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: s("http"),
                    protocol: s("TCP"),
                    app_protocol: None,
                    port: Some(80),
                    target_port: int_or_string(json!("web")),
                    node_port: Some(0),
                },
                core::ServicePort {
                    name: s("none"),
                    protocol: s("UDP"),
                    app_protocol: s(""),
                    port: Some(0),
                    target_port: int_or_string(json!(0)),
                    node_port: Some(0),
                },
            ],
            selector: [("app".to_string(), "web".to_string())].into(),
            cluster_ip: s("None"),
            r#type: s("ClusterIP"),
            session_affinity: s(""),
            load_balancer_ip: s(""),
            external_name: s(""),
            external_traffic_policy: s(""),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            allocate_load_balancer_node_ports: Some(false),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    check(
        "Service",
        "v1",
        service,
        json!({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "web"},
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web"},
                    {"name": "none", "protocol": "UDP", "appProtocol": "", "port": 0,
                        "targetPort": 0}
                ],
                "selector": {"app": "web"},
                "clusterIP": "None",
                "type": "ClusterIP",
                "allocateLoadBalancerNodePorts": false
            },
            "status": {"loadBalancer": {}}}),
    );
}

#[test]
fn lease_times_are_rfc3339_with_microseconds() {
    let lease = coordination::Lease {
        metadata: Some(meta::ObjectMeta {
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_704_164_645),
                nanos: Some(123_456_789),
            }),
            deletion_grace_period_seconds: Some(0),
            ..object_meta("holder").unwrap()
        }),
        spec: Some(coordination::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(0),
            acquire_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(123_456_789),
            }),
            renew_time: Some(meta::MicroTime {
                seconds: Some(0),
                nanos: Some(0),
            }),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    check(
        "Lease",
        "coordination.k8s.io/v1",
        lease,
        json!({"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"name": "holder", "creationTimestamp": "2024-01-02T03:04:05Z",
                "deletionGracePeriodSeconds": 0},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 0,
                "acquireTime": "2024-01-02T03:04:05.123456Z",
                "renewTime": "1970-01-01T00:00:00.000000Z", "leaseTransitions": 0}}),
    );
}

#[test]
fn subject_access_review_extra_values_are_arrays() {
    use k8s_pb::api::authorization::v1 as authorization;
    let review = authorization::SubjectAccessReview {
        metadata: object_meta(""),
        spec: Some(authorization::SubjectAccessReviewSpec {
            non_resource_attributes: Some(authorization::NonResourceAttributes {
                path: s("/healthz"),
                verb: s("get"),
            }),
            user: s("alice"),
            groups: vec!["devs".into()],
            extra: [(
                "scopes".to_string(),
                authorization::ExtraValue {
                    items: vec!["a".into(), "b".into()],
                },
            )]
            .into(),
            uid: s(""),
            ..Default::default()
        }),
        status: Some(authorization::SubjectAccessReviewStatus {
            allowed: Some(false),
            denied: Some(false),
            reason: s(""),
            evaluation_error: s(""),
        }),
    };
    check(
        "SubjectAccessReview",
        "authorization.k8s.io/v1",
        review,
        json!({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "metadata": {},
            "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"},
                "user": "alice", "groups": ["devs"], "extra": {"scopes": ["a", "b"]}},
            "status": {"allowed": false}}),
    );
}

#[test]
fn custom_resource_definition_schemas() {
    let props = |ty: &str| apiextensions::JsonSchemaProps {
        r#type: s(ty),
        ..Default::default()
    };
    let schema = apiextensions::JsonSchemaProps {
        r#type: s("object"),
        properties: [
            ("replicas".to_string(), props("integer")),
            (
                "tags".to_string(),
                apiextensions::JsonSchemaProps {
                    items: Some(Box::new(apiextensions::JsonSchemaPropsOrArray {
                        schema: Some(Box::new(props("string"))),
                        j_son_schemas: vec![],
                    })),
                    ..props("array")
                },
            ),
            (
                "mode".to_string(),
                apiextensions::JsonSchemaProps {
                    default: Some(apiextensions::Json {
                        raw: Some(br#""fast""#.to_vec()),
                    }),
                    r#enum: vec![
                        apiextensions::Json {
                            raw: Some(br#""fast""#.to_vec()),
                        },
                        apiextensions::Json {
                            raw: Some(b"null".to_vec()),
                        },
                    ],
                    ..props("string")
                },
            ),
        ]
        .into(),
        additional_properties: Some(Box::new(apiextensions::JsonSchemaPropsOrBool {
            allows: Some(false),
            schema: None,
        })),
        x_kubernetes_preserve_unknown_fields: Some(true),
        ..Default::default()
    };
    let crd = apiextensions::CustomResourceDefinition {
        metadata: object_meta("widgets.example.com"),
        spec: Some(apiextensions::CustomResourceDefinitionSpec {
            group: s("example.com"),
            names: Some(apiextensions::CustomResourceDefinitionNames {
                plural: s("widgets"),
                singular: s(""),
                kind: s("Widget"),
                list_kind: s(""),
                ..Default::default()
            }),
            scope: s("Namespaced"),
            versions: vec![apiextensions::CustomResourceDefinitionVersion {
                name: s("v1"),
                served: Some(true),
                storage: Some(true),
                deprecated: Some(false),
                schema: Some(apiextensions::CustomResourceValidation {
                    open_apiv3_schema: Some(schema),
                }),
                ..Default::default()
            }],
            preserve_unknown_fields: Some(false),
            ..Default::default()
        }),
        status: None,
    };
    check(
        "CustomResourceDefinition",
        "apiextensions.k8s.io/v1",
        crd,
        json!({"kind": "CustomResourceDefinition", "apiVersion": "apiextensions.k8s.io/v1",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com",
            "names": {"plural": "widgets", "kind": "Widget"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "mode": {"type": "string", "default": "fast",
                            "enum": ["fast", null]},
                        "replicas": {"type": "integer"},
                        "tags": {"type": "array", "items": {"type": "string"}}
                    },
                    "additionalProperties": false,
                    "x-kubernetes-preserve-unknown-fields": true
                }}}]}}),
    );
}

#[test]
fn raw_extensions_carry_json_or_a_nested_envelope() {
    let nested = envelope(
        "ConfigMap",
        "v1",
        core::ConfigMap {
            metadata: object_meta("inner"),
            data: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    for (raw, want) in [
        (
            br#"{"spec":{"replicas":2}}"#.to_vec(),
            json!({"spec": {"replicas": 2}}),
        ),
        (
            nested,
            json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "inner"},
                "data": {"k": "v"}}),
        ),
    ] {
        let revision = apps::ControllerRevision {
            metadata: object_meta("rev"),
            data: Some(RawExtension { raw: Some(raw) }),
            revision: Some(2),
        };
        check(
            "ControllerRevision",
            "apps/v1",
            revision,
            json!({"kind": "ControllerRevision", "apiVersion": "apps/v1",
                "metadata": {"name": "rev"}, "data": want, "revision": 2}),
        );
    }
    let broken = apps::ControllerRevision {
        data: Some(RawExtension {
            raw: Some(b"{nope".to_vec()),
        }),
        ..Default::default()
    };
    let err = decode_raw("apps/v1", "ControllerRevision", &broken.encode_to_vec()).unwrap_err();
    assert_eq!(err.code.as_u16(), 400, "{}", err.message);
}

#[test]
fn repeated_numbers_packed_or_not() {
    let unpacked = core::PodPortForwardOptions {
        ports: vec![80, 443],
    };
    let mut packed = vec![0x0a, 0x03, 80];
    prost::encoding::encode_varint(443, &mut packed);
    for raw in [unpacked.encode_to_vec(), packed] {
        assert_eq!(
            decode_raw("v1", "PodPortForwardOptions", &raw).unwrap(),
            json!({"kind": "PodPortForwardOptions", "apiVersion": "v1", "ports": [80, 443]})
        );
    }
}

#[test]
fn durations_are_written_as_go_writes_them() {
    let cases = [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (100_000_000, "100ms"),
        (1_000_000_000, "1s"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (-123_500_000_000, "-2m3.5s"),
        (i64::MAX, "2562047h47m16.854775807s"),
        (i64::MIN, "-2562047h47m16.854775808s"),
    ];
    for (nanos, want) in cases {
        assert_eq!(go_duration(nanos), want, "{nanos}");
    }
}

#[test]
fn envelopes_nested_in_raw_extensions_count_towards_the_depth_bound() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus/protobuf");
    for name in ["recursive-envelopes", "deep-schema"] {
        let body = std::fs::read(corpus.join(name)).unwrap();
        let err = decode_object(&body).unwrap_err();
        assert!(
            err.message.contains("nested deeper"),
            "{name}: {}",
            err.message
        );
    }
    let body = std::fs::read(corpus.join("nested-envelope")).unwrap();
    assert_eq!(
        decode_object(&body).unwrap()["data"],
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x"}, "data": {"k": "v"}})
    );
}
