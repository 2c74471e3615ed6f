//! The client and informers against a real API server and store running in this process: typed errors, paging, patches, deletecollection, watch resumption and relisting after 410 Gone.

use std::sync::Arc;
use std::time::Duration;

use k1s_controllers::client::{
    Client, ClientConfig, Credentials, DeleteParams, ListParams, PatchType, Resource, WatchEvent,
    WatchParams,
};
use k1s_controllers::informer::{Event, Informers};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Api {
    _dir: tempfile::TempDir,
    store: k1s_store::Store,
    client: Client,
    shutdown: CancellationToken,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = k1s_store::open(k1s_store::Config::default()).unwrap();
    let shutdown = CancellationToken::new();
    let running = k1s_apiserver::start(
        k1s_apiserver::Config {
            data_dir: dir.path().to_path_buf(),
            bind_address: "127.0.0.1".parse().unwrap(),
            port: 0,
            write_kubeconfig: None,
            event_ttl: Duration::from_secs(3600),
            token_auth_file: None,
            audit_log_path: None,
            audit_log_level: k1s_apiserver::AuditLevel::Metadata,
            authorization: true,
        },
        store.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let tls = dir.path().join("tls");
    let read = |name: &str| std::fs::read_to_string(tls.join(name)).unwrap();
    let client = Client::new(&ClientConfig {
        server: format!("https://{}", running.local_addr),
        ca_pem: read("ca.crt"),
        credentials: Credentials::Certificate {
            cert_pem: read("admin.crt"),
            key_pem: read("admin.key"),
        },
        user_agent: "k1s-controllers-test".into(),
    })
    .unwrap();
    Api {
        _dir: dir,
        store,
        client,
        shutdown,
    }
}

fn configmaps() -> Resource {
    Resource::core("configmaps", true)
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_verbs_and_typed_errors() {
    let api = api().await;
    let c = &api.client;
    let cm = configmaps();
    let created = c
        .create(&cm, Some("default"), &configmap("a"))
        .await
        .unwrap();
    assert_eq!(created["metadata"]["namespace"], "default");
    let err = c
        .create(&cm, Some("default"), &configmap("a"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(409));
    assert_eq!(err.status().unwrap().reason, "AlreadyExists");
    let err = c.get(&cm, Some("default"), "missing").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(
        err.to_string(),
        r#"GET /api/v1/namespaces/default/configmaps/missing: configmaps "missing" not found (404 NotFound)"#
    );

    // A stale resourceVersion conflicts.
    let mut stale = created.clone();
    c.patch(
        &cm,
        Some("default"),
        "a",
        PatchType::Merge,
        &json!({"data": {"m": "1"}}),
    )
    .await
    .unwrap();
    stale["data"]["k"] = json!("changed");
    let err = c
        .update(&cm, Some("default"), "a", &stale)
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let patched = c
        .patch(
            &cm,
            Some("default"),
            "a",
            PatchType::Strategic,
            &json!({"metadata": {"labels": {"app": "x"}}}),
        )
        .await
        .unwrap();
    assert_eq!(patched["data"], json!({"k": "v", "m": "1"}));
    assert_eq!(patched["metadata"]["labels"]["app"], "x");

    // Paging: every page read at the first page's revision.
    for i in 0..7 {
        c.create(&cm, Some("default"), &configmap(&format!("p{i}")))
            .await
            .unwrap();
    }
    let page = c
        .list(
            &cm,
            Some("default"),
            &ListParams {
                limit: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert!(page["metadata"]["continue"].as_str().is_some());
    let (all, rv) = c
        .list_all(
            &cm,
            Some("default"),
            &ListParams {
                limit: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 8);
    assert!(!rv.is_empty());

    // Selectors reach the server intact.
    let (labelled, _) = c
        .list_all(
            &cm,
            None,
            &ListParams {
                label_selector: Some("app in (x,y)".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(labelled.len(), 1);

    let deleted = c
        .delete_collection(
            &cm,
            Some("default"),
            &ListParams {
                label_selector: Some("app=x".into()),
                ..Default::default()
            },
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    assert_eq!(deleted["items"].as_array().unwrap().len(), 1);
    c.delete(&cm, Some("default"), "p0", &DeleteParams::default())
        .await
        .unwrap();
    let err = c
        .delete(&cm, Some("default"), "p0", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(err.is_not_found());

    // Discovery lists namespaced, deletable resources.
    let discovery = c.discover().await;
    assert!(discovery.failures.is_empty(), "{:?}", discovery.failures);
    let found = discovery
        .resources
        .iter()
        .find(|r| r.resource == cm)
        .expect("configmaps discovered");
    assert!(found.supports("deletecollection") && found.supports("list"));
    assert_eq!(found.kind, "ConfigMap");
    assert!(
        discovery
            .resources
            .iter()
            .all(|r| !r.resource.plural.contains('/'))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_events_and_reports_gone_versions() {
    let api = api().await;
    let c = &api.client;
    let cm = configmaps();
    let first = c
        .create(&cm, Some("default"), &configmap("w"))
        .await
        .unwrap();
    let rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut stream = c
        .watch(
            &cm,
            None,
            &WatchParams {
                resource_version: Some(rv.clone()),
                allow_bookmarks: true,
                timeout_seconds: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    c.patch(
        &cm,
        Some("default"),
        "w",
        PatchType::Merge,
        &json!({"data": {"k": "2"}}),
    )
    .await
    .unwrap();
    c.delete(&cm, Some("default"), "w", &DeleteParams::default())
        .await
        .unwrap();
    let next = |e: Option<_>| match e {
        Some(Ok(event)) => event,
        other => panic!("no event: {other:?}"),
    };
    assert!(matches!(next(stream.next().await), WatchEvent::Modified(o) if o["data"]["k"] == "2"));
    assert!(
        matches!(next(stream.next().await), WatchEvent::Deleted(o) if o["metadata"]["name"] == "w")
    );

    // Once compacted, the old version is gone: a 410 Expired error event.
    for i in 0..3 {
        c.create(&cm, Some("default"), &configmap(&format!("x{i}")))
            .await
            .unwrap();
    }
    api.store
        .compact(api.store.current_revision())
        .await
        .unwrap();
    let mut old = c
        .watch(
            &cm,
            None,
            &WatchParams {
                resource_version: Some(rv),
                ..Default::default()
            },
        )
        .await;
    match &mut old {
        Ok(stream) => match stream.next().await {
            Some(Ok(WatchEvent::Error(status))) => assert_eq!(status.code, 410),
            other => panic!("expected a 410 error event, got {other:?}"),
        },
        Err(e) => assert!(e.is_gone(), "{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informer_caches_resumes_and_relists_after_gone() {
    let api = api().await;
    let c = &api.client;
    let cm = configmaps();
    c.create(&cm, Some("default"), &configmap("before"))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    // Every watch ends after a second, so resumption is exercised constantly.
    let informers = Informers::new(c.clone(), shutdown.clone()).with_watch_timeout(1);
    let informer = informers.informer(&cm);
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = events.clone();
    informer.add_handler(move |event| {
        let line = match event {
            Event::Added(o) => format!("added {}", o["metadata"]["name"].as_str().unwrap()),
            Event::Updated { new, .. } => {
                format!("updated {}", new["metadata"]["name"].as_str().unwrap())
            }
            Event::Deleted(o) => format!("deleted {}", o["metadata"]["name"].as_str().unwrap()),
        };
        sink.lock().push(line);
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(10), informers.wait_synced())
            .await
            .unwrap()
    );
    assert!(informer.get("default/before").is_some());
    // One informer per resource: asking again shares the cache and its single watch.
    assert!(informers.informer(&cm).get("default/before").is_some());
    assert_eq!(informer.lists(), 1);

    // Live changes arrive, across watch restarts, without listing again.
    c.create(&cm, Some("kube-system"), &configmap("live"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.patch(
        &cm,
        Some("kube-system"),
        "live",
        PatchType::Merge,
        &json!({"data": {"k": "2"}}),
    )
    .await
    .unwrap();
    c.delete(&cm, Some("default"), "before", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the delete to reach the cache", || {
        informer.get("default/before").is_none()
    })
    .await;
    assert_eq!(informer.get("kube-system/live").unwrap()["data"]["k"], "2");
    assert_eq!(informer.list_namespace("kube-system").len(), 1);
    assert!(informer.list_namespace("default").is_empty());
    assert_eq!(informer.lists(), 1, "a resumed watch must not list again");
    assert_eq!(
        *events.lock(),
        [
            "added before",
            "added live",
            "updated live",
            "deleted before"
        ]
    );

    // History compacted past the informer's version while its watch is down: 410, relist.
    let secrets = Resource::core("secrets", true);
    for i in 0..5 {
        c.create(
            &secrets,
            Some("default"),
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s{i}")}}),
        )
        .await
        .unwrap();
    }
    api.store
        .compact(api.store.current_revision())
        .await
        .unwrap();
    eventually("a relist after 410", || informer.lists() >= 2).await;
    c.create(&cm, Some("default"), &configmap("after"))
        .await
        .unwrap();
    eventually("the cache to follow the new watch", || {
        informer.get("default/after").is_some()
    })
    .await;
    assert_eq!(informer.list().len(), 2);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), informers.stopped())
        .await
        .expect("informers stop on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_informers_hold_only_metadata_and_stop_alone() {
    let api = api().await;
    let c = &api.client;
    let cm = configmaps();
    c.create(&cm, Some("default"), &configmap("before"))
        .await
        .unwrap();
    let got = c
        .get_metadata(&cm, Some("default"), "before")
        .await
        .unwrap();
    assert_eq!(got["kind"], "PartialObjectMetadata");
    assert_eq!(got["metadata"]["name"], "before");
    assert!(got.get("data").is_none());

    let shutdown = CancellationToken::new();
    let informers = Informers::new(c.clone(), shutdown.clone()).with_watch_timeout(1);
    let informer = informers.metadata_informer(&cm);
    assert!(informers.has_metadata_informer(&cm));
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let sink = seen.clone();
    informer.add_handler(move |event| {
        if let Event::Added(o) | Event::Updated { new: o, .. } = event {
            sink.lock().push((**o).clone());
        }
    });
    assert!(informer.wait_synced(&shutdown).await);
    c.create(&cm, Some("default"), &configmap("live"))
        .await
        .unwrap();
    eventually("the watched object", || {
        informer.get("default/live").is_some()
    })
    .await;
    for object in seen
        .lock()
        .iter()
        .chain([&*informer.get("default/before").unwrap()])
    {
        assert_eq!(object["kind"], "PartialObjectMetadata", "{object}");
        assert!(object.get("data").is_none(), "{object}");
        assert!(
            object["metadata"].get("managedFields").is_none(),
            "{object}"
        );
        assert!(object["metadata"]["uid"].is_string(), "{object}");
    }

    // A full informer, once running, is the one metadata readers share.
    let secrets = Resource::core("secrets", true);
    let full = informers.informer(&secrets);
    full.wait_synced(&shutdown).await;
    assert!(!informers.has_metadata_informer(&secrets));
    assert_eq!(informers.metadata_informer(&secrets).lists(), full.lists());

    // Stopped alone: no more changes reach it; the others carry on.
    informers.stop_metadata_informer(&cm);
    assert!(!informers.has_metadata_informer(&cm));
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.create(&cm, Some("default"), &configmap("unseen"))
        .await
        .unwrap();
    c.create(
        &secrets,
        Some("default"),
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    )
    .await
    .unwrap();
    eventually("the full informer to go on", || {
        full.get("default/s").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(informer.get("default/unseen").is_none());

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), informers.stopped())
        .await
        .expect("informers stop on shutdown");
}
