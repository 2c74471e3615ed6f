//! The Kubernetes REST API over the store: discovery, CRUD and watch over HTTPS with client-certificate authentication (the apiserver issue fills in the rest: OpenAPI, patch, subresources, protobuf, authorization and admission).

pub mod kubeconfig;
pub mod tls;

mod admission;
mod audit;
mod auth;
mod cache;
mod cluster;
mod core;
mod crd;
mod discovery;
mod events;
#[cfg(test)]
mod fuzz;
mod jsonpath;
mod managed;
mod metrics;
mod object;
mod openapi;
mod openapi_v2;
mod patch;
mod patchmeta;
mod pod;
mod protobuf;
mod registry;
mod request;
mod rest;
mod selector;
mod serve;
mod service;
mod status;
mod strategy;
mod structural;
mod table;
mod workloads;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use k1s_store::Store;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use audit::Level as AuditLevel;
pub use status::ApiError;

/// The Kubernetes minor version whose API k1s serves.
pub const KUBERNETES_MINOR: &str = "33";
/// `/version`'s gitVersion: upstream's version with k1s's as semver build metadata.
pub fn git_version() -> String {
    format!("v1.{KUBERNETES_MINOR}.0+k1s.{}", env!("CARGO_PKG_VERSION"))
}

/// Everything that can stop the API server from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot set up certificates under {path}")]
    Tls {
        path: PathBuf,
        #[source]
        source: tls::Error,
    },
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the kubeconfig to {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the initial object {name}: {message}")]
    Bootstrap { name: String, message: String },
    #[error("cannot open the audit log {path}")]
    AuditLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up authentication")]
    Auth {
        #[source]
        source: auth::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Also write the admin kubeconfig here.
    pub write_kubeconfig: Option<PathBuf>,
    /// How long events live after their last write.
    pub event_ttl: std::time::Duration,
    /// Static bearer tokens (`--token-auth-file`, upstream's CSV).
    pub token_auth_file: Option<PathBuf>,
    /// Write an audit event for every authenticated request here (`--audit-log-path`).
    pub audit_log_path: Option<PathBuf>,
    /// How much each audit event records (`--audit-log-level`).
    pub audit_log_level: AuditLevel,
    /// Enforce authorization (the Node authorizer, then RBAC). Off, every authenticated
    /// request is allowed and anonymous ones reach only the public endpoints.
    pub authorization: bool,
}

/// A started API server.
#[derive(Debug)]
pub struct Running {
    pub local_addr: SocketAddr,
    /// `<data-dir>/kubeconfig.yaml`.
    pub kubeconfig: PathBuf,
    pub task: tokio::task::JoinHandle<()>,
    tls: tls::ClusterTls,
}

/// What an in-process client needs to reach the API server as some user.
#[derive(Clone)]
pub struct ClientCredentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Running {
    /// Mint a client certificate for user `cn` in `groups`, signed by the cluster CA.
    pub fn client_credentials(&self, cn: &str, groups: &[&str]) -> Result<ClientCredentials> {
        let (cert_pem, key_pem) =
            tls::issue_client_cert(&self.tls, cn, groups).map_err(|source| Error::Tls {
                path: PathBuf::from("(in memory)"),
                source,
            })?;
        Ok(ClientCredentials {
            ca_pem: self.tls.ca_cert_pem.clone(),
            cert_pem,
            key_pem,
        })
    }
}

/// The namespaces every cluster starts with.
const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Set up certificates, create the initial objects, bind, write the kubeconfig and start
/// serving until `shutdown`.
pub async fn start(config: Config, store: Store, shutdown: CancellationToken) -> Result<Running> {
    let tls_dir = config.data_dir.join("tls");
    let tls_err = |source| Error::Tls {
        path: tls_dir.clone(),
        source,
    };
    let extra_ips: Vec<IpAddr> = if config.bind_address.is_unspecified() {
        vec![]
    } else {
        vec![config.bind_address]
    };
    let cluster_tls =
        tls::load_or_create(&tls_dir, &tls::SanConfig::for_host(&extra_ips)).map_err(tls_err)?;
    let server_config = tls::server_config(&cluster_tls).map_err(tls_err)?;
    let verifier = tls::ClientVerifier::new(&cluster_tls).map_err(tls_err)?;

    let mut rest = rest::Rest {
        cache: cache::WatchCache::new(store.clone()),
        store,
        openapi: openapi::OpenApi::build(),
        event_ttl: config.event_ttl,
        authorizer: None,
    };
    bootstrap(&rest).await?;
    bootstrap_policy(&rest).await?;
    let rbac = auth::rbac::Cache::start(rest.store.clone()).await;
    rest.authorizer = config.authorization.then(|| rbac.clone());
    let auth = auth::Auth::new(
        &tls_dir,
        config.token_auth_file.as_deref(),
        rbac,
        config.authorization,
    )
    .map_err(|source| Error::Auth { source })?;
    auth::join::ensure_token(&config.data_dir, &cluster_tls.ca_cert_pem).map_err(|source| {
        Error::Auth {
            source: auth::Error::JoinToken {
                path: config
                    .data_dir
                    .join(auth::join::TOKEN_FILE)
                    .display()
                    .to_string(),
                source,
            },
        }
    })?;
    crd::refresh(&rest.store, &rest.openapi)
        .await
        .map_err(|e| Error::Bootstrap {
            name: "custom resource definitions".into(),
            message: e.message,
        })?;

    let addr = SocketAddr::new(config.bind_address, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| Error::Listen { addr, source })?;
    let client_ip = if config.bind_address.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        config.bind_address
    };
    let server_url = format!("https://{}", SocketAddr::new(client_ip, local_addr.port()));
    let contents = kubeconfig::render(&server_url, &cluster_tls);
    let kubeconfig_path = config.data_dir.join("kubeconfig.yaml");
    for path in std::iter::once(&kubeconfig_path).chain(config.write_kubeconfig.as_ref()) {
        kubeconfig::write(path, &contents).map_err(|source| Error::Kubeconfig {
            path: path.clone(),
            source,
        })?;
    }

    // Where pods reach this server: the bind address, or the host's first address.
    let advertise = match config.bind_address {
        ip if !ip.is_unspecified() => ip,
        _ => tls::host_ips()
            .into_iter()
            .find(IpAddr::is_ipv4)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    };
    bootstrap_service(&rest, advertise, local_addr.port()).await?;

    let metrics = Arc::new(metrics::Metrics::new());
    let audit = match &config.audit_log_path {
        Some(path) => Some(
            audit::Auditor::open(path, config.audit_log_level, metrics.clone()).map_err(
                |source| Error::AuditLog {
                    path: path.clone(),
                    source,
                },
            )?,
        ),
        None => None,
    };
    let api = Arc::new(serve::Api {
        rest,
        verifier,
        auth,
        ca_bundle: cluster_tls.ca_cert_pem.clone(),
        server_address: format!("{client_ip}:{}", local_addr.port()),
        git_version: git_version(),
        metrics,
        audit,
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
    let task = tokio::spawn(serve::accept_loop(listener, acceptor, api, shutdown));
    Ok(Running {
        local_addr,
        kubeconfig: kubeconfig_path,
        task,
        tls: cluster_tls,
    })
}

/// Free allocations a crash leaked, then create or refresh the `default/kubernetes` Service,
/// Endpoints and EndpointSlice so they point at this server.
async fn bootstrap_service(rest: &rest::Rest, address: IpAddr, port: u16) -> Result<()> {
    let services = registry::find("", "v1", "services").expect("services are served");
    let freed = service::repair(&rest.store, services)
        .await
        .map_err(|e| Error::Bootstrap {
            name: "service allocations".into(),
            message: e.message,
        })?;
    if freed > 0 {
        tracing::info!(freed, "freed leaked service allocations");
    }
    for (plural, object) in service::kubernetes_objects(&address.to_string(), port) {
        let group = object["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .map_or("", |(g, _)| g);
        let resource = registry::find(group, "v1", plural).expect("bootstrap kinds are served");
        rest.ensure_object(resource, Some("default"), &object)
            .await
            .map_err(|e| Error::Bootstrap {
                name: format!("default/kubernetes {plural}"),
                message: e.message,
            })?;
    }
    Ok(())
}

/// Create upstream's bootstrap RBAC roles and bindings, and bring them back in line at every
/// start unless an object opted out (`rbac.authorization.kubernetes.io/autoupdate: "false"`).
async fn bootstrap_policy(rest: &rest::Rest) -> Result<()> {
    let objects = auth::policy::bootstrap();
    let writes = objects.iter().map(|(plural, object)| async move {
        let resource = registry::find("rbac.authorization.k8s.io", "v1", plural)
            .expect("rbac resources are served");
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let key = resource.key(None, &name);
        let stored = rest
            .store
            .get(key.as_bytes(), None)
            .await
            .ok()
            .and_then(|(_, kv)| kv)
            .and_then(|kv| serde_json::from_slice::<serde_json::Value>(&kv.value).ok());
        if stored.as_ref().is_some_and(auth::policy::keeps_own) {
            return Ok(());
        }
        // Rules and subjects the stored object gained stay; lost bootstrap ones come back.
        let wanted = auth::policy::reconcile(object, stored.as_ref());
        rest.ensure_object(resource, None, &wanted)
            .await
            .map(|_| ())
            .map_err(|e| Error::Bootstrap {
                name: format!("{plural}/{name}"),
                message: e.message,
            })
    });
    futures_util::future::try_join_all(writes).await?;
    // Objects earlier versions bootstrapped and this one does not go (unless claimed).
    for (plural, name) in auth::policy::retired() {
        let resource = registry::find("rbac.authorization.k8s.io", "v1", plural)
            .expect("rbac resources are served");
        let key = resource.key(None, &name);
        let Ok((_, Some(kv))) = rest.store.get(key.as_bytes(), None).await else {
            continue;
        };
        let retirable = serde_json::from_slice::<serde_json::Value>(&kv.value)
            .is_ok_and(|stored| auth::policy::is_retirable(&stored));
        if !retirable {
            continue;
        }
        // Compare-and-delete: a change since the read keeps the object until the next start.
        match rest
            .store
            .delete(key.as_bytes(), Some(kv.mod_revision))
            .await
        {
            Ok(k1s_store::WriteOutcome::Committed { .. }) => {
                tracing::info!(%plural, %name, "deleted a retired bootstrap object");
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Error::Bootstrap {
                    name: format!("{plural}/{name}"),
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Create the initial namespaces unless they exist.
async fn bootstrap(rest: &rest::Rest) -> Result<()> {
    // Concurrent writes share the store's group commits (one fsync per batch), which keeps a
    // first start on disk fast.
    let namespaces = INITIAL_NAMESPACES.iter().map(|name| async move {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match rest
            .create_object(registry::namespaces(), None, &body)
            .await
        {
            Ok(_) => {
                tracing::info!(namespace = name, "created initial namespace");
                Ok(())
            }
            Err(e) if e.reason == "AlreadyExists" => Ok(()),
            Err(e) => Err(Error::Bootstrap {
                name: name.to_string(),
                message: e.message,
            }),
        }
    });
    futures_util::future::try_join_all(namespaces).await?;
    let objects = cluster::bootstrap_objects();
    let creates = objects.iter().map(|(plural, object)| async move {
        let group = object["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .map_or("", |(g, _)| g);
        let resource = registry::find(group, "v1", plural).expect("bootstrap kinds are served");
        match rest.create_object(resource, None, object).await {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "AlreadyExists" => Ok(()),
            Err(e) => Err(Error::Bootstrap {
                name: format!("{plural}/{}", object["metadata"]["name"]),
                message: e.message,
            }),
        }
    });
    futures_util::future::try_join_all(creates).await?;
    Ok(())
}
