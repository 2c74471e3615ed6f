//! kube-rs, the Rust client, against the real binary: typed get and list of ConfigMaps and Deployments, the runtime watcher (list then watch, and streaming lists), server-side apply with conflicts, and dynamic objects through aggregated discovery.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k1s_tests::Server;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Discovery;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

/// How long any single step may take before the test fails instead of hanging.
const STEP: Duration = Duration::from_secs(20);

fn server() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path().join("data"), &["--ephemeral"]).unwrap();
    (tmp, server)
}

/// A kube `Client` built from the kubeconfig the server wrote, as a user's program would.
async fn client(server: &Server) -> Client {
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig()).expect("reading the kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client config from the kubeconfig");
    Client::try_from(config).expect("a client")
}

fn configmap(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("app".into(), "kube-rs".into())])),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    let labels = BTreeMap::from([("app".to_string(), name.to_string())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "web".into(),
                        image: Some("nginx:1.27".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn names<K: ResourceExt>(items: &[K]) -> Vec<String> {
    let mut names: Vec<String> = items.iter().map(|o| o.name_any()).collect();
    names.sort();
    names
}

fn rv<K: ResourceExt>(object: &K) -> u64 {
    object
        .resource_version()
        .expect("a resourceVersion")
        .parse()
        .expect("a numeric resourceVersion")
}

#[tokio::test]
async fn typed_get_and_list_of_configmaps_and_deployments() {
    let (_tmp, s) = server();
    let client = client(&s).await;

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &configmap("alpha", &[("k", "1")]))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some(), "{created:?}");
    assert!(created.metadata.creation_timestamp.is_some(), "{created:?}");
    cms.create(&PostParams::default(), &configmap("beta", &[("k", "2")]))
        .await
        .unwrap();
    let got = cms.get("alpha").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(rv(&got), rv(&created));
    assert_eq!(got.data.as_ref().unwrap()["k"], "1");
    assert_eq!(got.labels()["app"], "kube-rs");

    let list = cms.list(&ListParams::default()).await.unwrap();
    // Controllers may add their own ConfigMaps (kube-root-ca.crt); ours are both there.
    let listed = names(&list.items);
    assert!(
        listed.contains(&"alpha".into()) && listed.contains(&"beta".into()),
        "{listed:?}"
    );
    let list_rv: u64 = list
        .metadata
        .resource_version
        .as_deref()
        .expect("list resourceVersion")
        .parse()
        .unwrap();
    assert!(
        list_rv >= rv(&got),
        "list at {list_rv} misses the write at {}",
        rv(&got)
    );
    let selected = cms
        .list(
            &ListParams::default()
                .labels("app=kube-rs")
                .fields("metadata.name=beta"),
        )
        .await
        .unwrap();
    assert_eq!(names(&selected.items), ["beta"]);
    let all: Api<ConfigMap> = Api::all(client.clone());
    let everywhere = all
        .list(&ListParams::default().labels("app=kube-rs"))
        .await
        .unwrap();
    assert_eq!(names(&everywhere.items), ["alpha", "beta"]);
    let missing = cms.get("gamma").await.unwrap_err();
    match missing {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 404, "{status:?}");
            assert_eq!(status.reason, "NotFound", "{status:?}");
            assert_eq!(status.message, r#"configmaps "gamma" not found"#);
        }
        other => panic!("expected a 404, got {other:?}"),
    }

    // Deployments come back with upstream's defaults, through k8s-openapi's strict types.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let created = deployments
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let got = deployments.get("web").await.unwrap();
    let spec = got.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let strategy = spec.strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Always"));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(
        pod.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    let list = deployments.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&list.items), ["web"]);
    let all: Api<Deployment> = Api::all(client.clone());
    assert_eq!(
        names(&all.list(&ListParams::default()).await.unwrap().items),
        ["web"]
    );
    // Paged: one item per page, the next page at the first page's revision.
    deployments
        .create(&PostParams::default(), &deployment("api", 1))
        .await
        .unwrap();
    let first = deployments
        .list(&ListParams::default().limit(1))
        .await
        .unwrap();
    assert_eq!(first.metadata.remaining_item_count, Some(1));
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = deployments
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    assert_eq!(second.metadata.continue_, None);
    let pages: Vec<Deployment> = first.items.into_iter().chain(second.items).collect();
    assert_eq!(names(&pages), ["api", "web"]);
}

/// The next watcher event within [`STEP`]; a watcher error fails the test (the server should
/// give the watcher no reason to retry).
async fn next<S>(stream: &mut S, what: &str) -> Event<ConfigMap>
where
    S: Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin,
{
    match tokio::time::timeout(STEP, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watcher error while waiting for {what}: {e:?}"),
        Ok(None) => panic!("watcher ended while waiting for {what}"),
        Err(_) => panic!("no watcher event within {STEP:?} while waiting for {what}"),
    }
}

/// Drive a runtime watcher over a namespace: the initial state arrives between Init and
/// InitDone, then a create, an update, a delete and a relabel out of the selector arrive as
/// Apply, Apply, Delete, Delete. Objects outside the label selector are never seen.
async fn watcher_sees_state_then_changes(streaming: bool) {
    let (_tmp, s) = server();
    let client = client(&s).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let pp = PostParams::default();
    for name in ["a", "b"] {
        cms.create(&pp, &configmap(name, &[("v", "0")]))
            .await
            .unwrap();
    }
    let mut other = configmap("unlabelled", &[]);
    other.metadata.labels = None;
    cms.create(&pp, &other).await.unwrap();

    let mut config = watcher::Config::default().labels("app=kube-rs");
    if streaming {
        config = config.streaming_lists();
    }
    let mut stream = watcher::watcher(cms.clone(), config).boxed();
    assert!(
        matches!(next(&mut stream, "Init").await, Event::Init),
        "the watcher starts with Init"
    );
    let mut initial = Vec::new();
    loop {
        match next(&mut stream, "the initial objects").await {
            Event::InitApply(cm) => initial.push(cm),
            Event::InitDone => break,
            other => panic!("unexpected event during the initial list: {other:?}"),
        }
    }
    assert_eq!(names(&initial), ["a", "b"]);

    cms.create(&pp, &configmap("c", &[("v", "0")]))
        .await
        .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "1"}})),
    )
    .await
    .unwrap();
    cms.create(&pp, &{
        let mut cm = configmap("unlabelled-2", &[]);
        cm.metadata.labels = None;
        cm
    })
    .await
    .unwrap();
    let deleted = cms.delete("b", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_left(), "a ConfigMap is deleted at once");
    // Leaving the selector is a delete carrying the last state that matched.
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}, "data": {"v": "2"}})),
    )
    .await
    .unwrap();

    let mut seen = Vec::new();
    while seen.len() < 4 {
        match next(&mut stream, "the changes").await {
            Event::Apply(cm) => seen.push(format!(
                "apply {} v={}",
                cm.name_any(),
                cm.data.as_ref().unwrap()["v"]
            )),
            Event::Delete(cm) => seen.push(format!(
                "delete {} v={} app={}",
                cm.name_any(),
                cm.data.as_ref().unwrap()["v"],
                cm.labels()["app"]
            )),
            other => panic!("unexpected event while watching: {other:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            "apply c v=0",
            "apply a v=1",
            "delete b v=0 app=kube-rs",
            "delete c v=0 app=kube-rs"
        ]
    );
}

#[tokio::test]
async fn watcher_lists_then_watches() {
    watcher_sees_state_then_changes(false).await;
}

#[tokio::test]
async fn watcher_with_streaming_lists() {
    watcher_sees_state_then_changes(true).await;
}

#[tokio::test]
async fn server_side_apply_conflicts_then_force_wins() {
    let (_tmp, s) = server();
    let client = client(&s).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let manifest = |value: &str| {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "shared"},
            "data": {"owner": value},
        })
    };
    let applied = cms
        .patch(
            "shared",
            &PatchParams::apply("alice"),
            &Patch::Apply(manifest("alice")),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.as_ref().unwrap()["owner"], "alice");
    let managers: Vec<_> = applied
        .managed_fields()
        .iter()
        .map(|m| (m.manager.clone(), m.operation.clone()))
        .collect();
    assert_eq!(
        managers,
        [(Some("alice".to_string()), Some("Apply".to_string()))]
    );
    // Re-applying the same manifest changes nothing.
    let again = cms
        .patch(
            "shared",
            &PatchParams::apply("alice"),
            &Patch::Apply(manifest("alice")),
        )
        .await
        .unwrap();
    assert_eq!(rv(&again), rv(&applied), "a no-op apply must not write");

    let conflict = cms
        .patch(
            "shared",
            &PatchParams::apply("bob"),
            &Patch::Apply(manifest("bob")),
        )
        .await
        .unwrap_err();
    match conflict {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409, "{status:?}");
            assert_eq!(status.reason, "Conflict", "{status:?}");
            assert!(
                status.message.contains(r#"conflict with "alice""#)
                    && status.message.contains(".data.owner"),
                "{status:?}"
            );
        }
        other => panic!("expected a 409 conflict, got {other:?}"),
    }
    assert_eq!(
        cms.get("shared").await.unwrap().data.unwrap()["owner"],
        "alice",
        "a conflicting apply must not write"
    );

    let forced = cms
        .patch(
            "shared",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(manifest("bob")),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["owner"], "bob");
    let bob = forced
        .managed_fields()
        .iter()
        .find(|m| m.manager.as_deref() == Some("bob"))
        .expect("bob manages fields after forcing");
    let fields = serde_json::to_string(&bob.fields_v1).unwrap();
    assert!(fields.contains("f:owner"), "{fields}");
    assert!(
        forced
            .managed_fields()
            .iter()
            .filter(|m| m.manager.as_deref() == Some("alice"))
            .all(|m| !serde_json::to_string(&m.fields_v1)
                .unwrap()
                .contains("f:owner")),
        "alice lost .data.owner: {:?}",
        forced.managed_fields()
    );

    // A typed apply of a Deployment, then a scale by another manager's apply, forced.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let applied = deployments
        .patch(
            "web",
            &PatchParams::apply("alice"),
            &Patch::Apply(deployment("web", 1)),
        )
        .await
        .unwrap();
    assert_eq!(applied.spec.as_ref().unwrap().replicas, Some(1));
    let scale = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let err = deployments
        .patch("web", &PatchParams::apply("bob"), &Patch::Apply(&scale))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err:?}"
    );
    let scaled = deployments
        .patch(
            "web",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&scale),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(
        scaled
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .name,
        "web",
        "alice's other fields stay"
    );
}

#[tokio::test]
async fn dynamic_objects_through_aggregated_discovery() {
    let (_tmp, s) = server();
    let client = client(&s).await;
    let pp = PostParams::default();
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&pp, &configmap("dyn", &[("k", "v")]))
        .await
        .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&pp, &deployment("web", 1))
        .await
        .unwrap();

    let discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
    let (resource, caps) = discovery
        .resolve_gvk(&gvk)
        .expect("apps/v1 Deployment is discovered");
    assert_eq!(resource.plural, "deployments");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&list.items), ["web"]);
    assert_eq!(list.items[0].data["spec"]["replicas"], 1);

    // Legacy discovery agrees.
    let legacy = Discovery::new(client.clone())
        .filter(&["", "apps"])
        .run()
        .await
        .expect("legacy discovery");
    let (legacy_resource, _) = legacy.resolve_gvk(&gvk).unwrap();
    assert_eq!(legacy_resource, resource);

    // A resource described by hand, as a dynamic client without discovery would.
    let resource = ApiResource::erase::<ConfigMap>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &resource);
    let list = api
        .list(&ListParams::default().labels("app=kube-rs"))
        .await
        .unwrap();
    assert_eq!(names(&list.items), ["dyn"]);
    assert_eq!(list.items[0].data["data"]["k"], "v");
    let object = api.get("dyn").await.unwrap();
    assert_eq!(
        object
            .types
            .as_ref()
            .map(|t| (t.api_version.as_str(), t.kind.as_str())),
        Some(("v1", "ConfigMap"))
    );
}
