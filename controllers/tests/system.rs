//! The system controllers against a real API server and store running in this process: the periodic full recount of quota usage repairs a status nothing else would touch.

use std::time::Duration;

use k1s_controllers::client::{Client, ClientConfig, Credentials, Resource};
use k1s_controllers::{Options, run_with};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Api {
    _dir: tempfile::TempDir,
    config: ClientConfig,
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
        store,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let tls = dir.path().join("tls");
    let read = |name: &str| std::fs::read_to_string(tls.join(name)).unwrap();
    let config = ClientConfig {
        server: format!("https://{}", running.local_addr),
        ca_pem: read("ca.crt"),
        credentials: Credentials::Certificate {
            cert_pem: read("admin.crt"),
            key_pem: read("admin.key"),
        },
        user_agent: "k1s-controllers-test".into(),
    };
    let client = Client::new(&config).unwrap();
    Api {
        _dir: dir,
        config,
        client,
        shutdown,
    }
}

/// Poll `check` every 20 ms for up to 20 s.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_resync_repairs_a_quota_status() {
    let api = api().await;
    let controllers = tokio::spawn(run_with(
        api.config.clone(),
        Options {
            resource_quota_sync_period: Duration::from_millis(500),
            ..Options::default()
        },
        api.shutdown.clone(),
    ));
    let quotas = Resource::core("resourcequotas", true);
    let configmaps = Resource::core("configmaps", true);
    api.client
        .create(
            &quotas,
            Some("default"),
            &json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"configmaps": "10", "requests.memory": "1Gi"}}}),
        )
        .await
        .unwrap();
    api.client
        .create(
            &configmaps,
            Some("default"),
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
        )
        .await
        .unwrap();
    // Ours and the root CA publisher's.
    let expected = json!({"configmaps": "2", "requests.memory": "0"});
    let used = async || -> Option<Value> {
        let q = api.client.get(&quotas, Some("default"), "q").await.ok()?;
        Some(q["status"]["used"].clone())
    };
    eventually("the first count", async || {
        (used().await? == expected).then_some(())
    })
    .await;

    // A status written by someone else: no spec or counted object changes, so only the
    // periodic recount puts it right.
    let mut q = api.client.get(&quotas, Some("default"), "q").await.unwrap();
    q["status"]["used"] = json!({"configmaps": "7", "requests.memory": "5Gi"});
    api.client
        .update_subresource(&quotas, Some("default"), "q", "status", &q)
        .await
        .unwrap();
    eventually("the periodic recount", async || {
        (used().await? == expected).then_some(())
    })
    .await;

    api.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), controllers)
        .await
        .expect("likely deadlocked")
        .unwrap()
        .unwrap();
}
