//! The control loops (today the namespace, service account, root CA publisher and resource quota controllers; Deployment, ReplicaSet, garbage collector and the scheduler follow) and the runtime they share: an API client, shared informers, work queues and the reconcile contract. Controllers read through the informers' caches and write through the API, as any client does.

pub mod client;
pub mod controller;
pub mod informer;
pub mod namespace;
pub mod nodeipam;
pub mod quantity;
pub mod queue;
pub mod resourcequota;
pub mod rootca;
pub mod serviceaccount;

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use client::{Client, ClientConfig};

/// What can stop the controllers from running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API client cannot be built from its configuration.
    #[error("cannot build the controllers' api client for {server}")]
    Client {
        server: String,
        #[source]
        source: client::Error,
    },
    /// A controller task ended abnormally.
    #[error("controller {name} stopped unexpectedly: {message}")]
    Stopped { name: &'static str, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `error: cause: cause` on one line, for logs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Settings of the controllers beyond where the API server is.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often every quota's usage is recomputed in full (kube-controller-manager's
    /// `--resource-quota-sync-period`, 5 minutes).
    pub resource_quota_sync_period: Duration,
    /// Where nodes' pod CIDRs come from (`--cluster-cidr`, `--node-cidr-mask-size`); `None`
    /// runs no node IPAM controller.
    pub node_ipam: Option<nodeipam::Config>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            resource_quota_sync_period: resourcequota::DEFAULT_SYNC_PERIOD,
            node_ipam: nodeipam::Config::new(nodeipam::DEFAULT_CLUSTER_CIDR, None).ok(),
        }
    }
}

/// Run every controller with the default options; see `run_with`.
pub async fn run(config: ClientConfig, shutdown: CancellationToken) -> Result<()> {
    run_with(config, Options::default(), shutdown).await
}

/// Run every controller against the API server `config` points at until `shutdown`. If they
/// cannot start, or one stops on its own, `shutdown` is cancelled (so the process stops too)
/// and the error returned. The root CA publisher publishes `config.ca_pem`.
pub async fn run_with(
    config: ClientConfig,
    options: Options,
    shutdown: CancellationToken,
) -> Result<()> {
    let client = match Client::new(&config) {
        Ok(client) => client,
        Err(source) => {
            shutdown.cancel();
            return Err(Error::Client {
                server: config.server.clone(),
                source,
            });
        }
    };
    let informers = informer::Informers::new(client.clone(), shutdown.clone());
    let mut controllers = JoinSet::new();
    let namespace = namespace::NamespaceController::new(client.clone(), &informers);
    controllers.spawn({
        let shutdown = shutdown.clone();
        async move {
            namespace.run(shutdown).await;
            "namespace"
        }
    });
    let accounts = serviceaccount::ServiceAccountController::new(client.clone(), &informers);
    controllers.spawn({
        let shutdown = shutdown.clone();
        async move {
            accounts.run(shutdown).await;
            "service-account"
        }
    });
    let root_ca = rootca::RootCaPublisher::new(client.clone(), &informers, config.ca_pem.clone());
    controllers.spawn({
        let shutdown = shutdown.clone();
        async move {
            root_ca.run(shutdown).await;
            "root-ca-cert-publisher"
        }
    });
    let quotas = resourcequota::ResourceQuotaController::new(
        client.clone(),
        &informers,
        options.resource_quota_sync_period,
    );
    controllers.spawn({
        let shutdown = shutdown.clone();
        async move {
            quotas.run(shutdown).await;
            "resourcequota"
        }
    });
    if let Some(ipam) = options.node_ipam {
        let ipam = nodeipam::NodeIpamController::new(client.clone(), &informers, ipam);
        controllers.spawn({
            let shutdown = shutdown.clone();
            async move {
                ipam.run(shutdown).await;
                "node-ipam"
            }
        });
    }
    tracing::info!(server = %config.server, "controllers starting");

    let mut result = Ok(());
    while let Some(done) = controllers.join_next().await {
        match done {
            Ok(name) if !shutdown.is_cancelled() => {
                result = Err(Error::Stopped {
                    name,
                    message: "returned before shutdown".into(),
                });
                shutdown.cancel();
            }
            Ok(_) => {}
            Err(e) => {
                result = Err(Error::Stopped {
                    name: "unknown",
                    message: e.to_string(),
                });
                shutdown.cancel();
            }
        }
    }
    informers.stopped().await;
    result
}
