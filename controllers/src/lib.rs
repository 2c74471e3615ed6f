//! The control loops (namespace, service account, root CA publisher, resource quota, Deployment, ReplicaSet and ReplicationController, taint eviction, node IPAM, garbage collector; the scheduler) and the runtime they share: an API client, one service-account identity per controller, shared informers, work queues and the reconcile contract. Controllers read through the informers' caches and write through the API, as any client does.

pub mod client;
pub mod controller;
pub mod credentials;
pub mod deployment;
pub mod events;
pub mod garbagecollector;
pub mod informer;
pub mod labels;
pub mod leaderelection;
pub mod namespace;
pub mod nodeipam;
pub mod quantity;
pub mod queue;
pub mod replicaset;
pub mod resourcequota;
pub mod rootca;
pub mod scheduler;
pub mod serviceaccount;
pub mod tainteviction;

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use client::{Client, ClientConfig, Credentials};

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
    /// A controller's own identity (service account, token) cannot be set up.
    #[error("cannot set up the credentials of a controller")]
    Credentials(#[source] credentials::Error),
    /// A controller task ended abnormally.
    #[error("controller {name} stopped unexpectedly: {message}")]
    Stopped { name: &'static str, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Now as RFC 3339 in UTC, to the second (how conditions carry their times).
pub(crate) fn rfc3339_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

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
    /// Who this process is when contending for the leader leases: stable across restarts
    /// of one server (so a restart takes its lease back at once), distinct between servers.
    pub identity: String,
    /// Where nodes' pod CIDRs come from (`--cluster-cidr`, `--node-cidr-mask-size`); `None`
    /// runs no node IPAM controller.
    pub node_ipam: Option<nodeipam::Config>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            resource_quota_sync_period: resourcequota::DEFAULT_SYNC_PERIOD,
            identity: leaderelection::identity(),
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
///
/// `config` is the controller manager's own identity: the shared informers list and watch with
/// it, and it gives each controller its own service account in kube-system (created if
/// missing) whose token the controller's client sends, as kube-controller-manager does with
/// `--use-service-account-credentials`.
pub async fn run_with(
    config: ClientConfig,
    options: Options,
    shutdown: CancellationToken,
) -> Result<()> {
    let clients = || -> Result<_> {
        let client_error = |source| Error::Client {
            server: config.server.clone(),
            source,
        };
        // Upstream's shared informers use the root client, named `shared-informers`.
        let informers = Client::new(&ClientConfig {
            user_agent: format!("{}/shared-informers", config.user_agent),
            ..config.clone()
        })
        .map_err(client_error)?;
        let builder =
            credentials::ClientBuilder::new(&config, shutdown.clone()).map_err(client_error)?;
        Ok((informers, builder))
    };
    let (informers_client, builder) = match clients() {
        Ok(clients) => clients,
        Err(e) => {
            shutdown.cancel();
            return Err(e);
        }
    };
    let mut elector = leaderelection::Elector::new(
        informers_client.clone(),
        "kube-system",
        "kube-controller-manager",
        options.identity.clone(),
    );
    if !elector.acquire(&shutdown).await {
        builder.stopped().await;
        return Ok(());
    }
    let leader = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let kept = elector.keep(&shutdown).await;
            if kept {
                elector.release().await;
            } else {
                shutdown.cancel();
            }
            kept
        })
    };
    let informers = informer::Informers::new(informers_client, shutdown.clone());
    let controllers =
        match start_controllers(&builder, &informers, &config, &options, &shutdown).await {
            Ok(controllers) => controllers,
            Err(e) => {
                // Failing to start because the server is stopping is a clean stop.
                let stopping = shutdown.is_cancelled();
                shutdown.cancel();
                informers.stopped().await;
                builder.stopped().await;
                return if stopping { Ok(()) } else { Err(e) };
            }
        };
    tracing::info!(server = %config.server, "controllers started");
    let mut result = supervise(controllers, &shutdown).await;
    informers.stopped().await;
    builder.stopped().await;
    if let Ok(false) = leader.await {
        result = Err(Error::Stopped {
            name: "leader-election",
            message: "the leader lease was lost".into(),
        });
    }
    result
}

/// Each controller, with the client of the service account it acts as (upstream's names).
async fn start_controllers(
    builder: &credentials::ClientBuilder,
    informers: &informer::Informers,
    config: &ClientConfig,
    options: &Options,
    shutdown: &CancellationToken,
) -> Result<JoinSet<&'static str>> {
    let client = async |service_account: &str| {
        builder
            .client(service_account)
            .await
            .map_err(Error::Credentials)
    };
    let mut controllers = JoinSet::new();
    let namespace =
        namespace::NamespaceController::new(client("namespace-controller").await?, informers);
    controllers.spawn({
        let shutdown = shutdown.clone();
        async move {
            namespace.run(shutdown).await;
            "namespace"
        }
    });
    let accounts = serviceaccount::ServiceAccountController::new(
        client("service-account-controller").await?,
        informers,
    );
    controllers.spawn({
        let shutdown = shutdown.clone();
        async move {
            accounts.run(shutdown).await;
            "service-account"
        }
    });
    let root_ca = rootca::RootCaPublisher::new(
        client("root-ca-cert-publisher").await?,
        informers,
        config.ca_pem.clone(),
    );
    controllers.spawn({
        let shutdown = shutdown.clone();
        async move {
            root_ca.run(shutdown).await;
            "root-ca-cert-publisher"
        }
    });
    let quotas = resourcequota::ResourceQuotaController::new(
        client("resourcequota-controller").await?,
        informers,
        options.resource_quota_sync_period,
    );
    controllers.spawn({
        let shutdown = shutdown.clone();
        async move {
            quotas.run(shutdown).await;
            "resourcequota"
        }
    });
    let deployments =
        deployment::DeploymentController::new(client("deployment-controller").await?, informers);
    controllers.spawn({
        let shutdown = shutdown.clone();
        async move {
            deployments.run(shutdown).await;
            "deployment"
        }
    });
    for kind in [
        replicaset::Kind::replica_sets(),
        replicaset::Kind::replication_controllers(),
    ] {
        let name = kind.controller;
        let controller =
            replicaset::ReplicaSetController::new(kind, client(name).await?, informers);
        controllers.spawn({
            let shutdown = shutdown.clone();
            async move {
                controller.run(shutdown).await;
                name
            }
        });
    }
    // As upstream, the taint eviction controller uses the node controller's account.
    let taints = tainteviction::TaintEviction::new(client("node-controller").await?, informers);
    controllers.spawn({
        let shutdown = shutdown.clone();
        async move {
            taints.run(shutdown).await;
            "taint-eviction-controller"
        }
    });
    if let Some(ipam) = options.node_ipam {
        // Upstream's node-ipam-controller runs as the node controller's account.
        let ipam =
            nodeipam::NodeIpamController::new(client("node-controller").await?, informers, ipam);
        controllers.spawn({
            let shutdown = shutdown.clone();
            async move {
                ipam.run(shutdown).await;
                "node-ipam"
            }
        });
    }
    // Last, so it reuses the informers the others opened.
    let garbage_collector = garbagecollector::GarbageCollector::new(
        client("generic-garbage-collector").await?,
        informers,
    );
    controllers.spawn({
        let shutdown = shutdown.clone();
        async move {
            garbage_collector.run(shutdown).await;
            "garbagecollector"
        }
    });
    Ok(controllers)
}

/// Wait for the controllers to stop; one stopping before `shutdown` cancels it and is the
/// error.
async fn supervise(
    mut controllers: JoinSet<&'static str>,
    shutdown: &CancellationToken,
) -> Result<()> {
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
    result
}
