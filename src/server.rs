//! `k1s server`, `k1s agent` and `k1s simulate`: start the pieces in dependency order and stop them together.

use anyhow::Context;
use k1s_store::{BackendConfig, SledConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::{AgentArgs, ServerArgs, SimulateArgs};

/// Start the store, the API server, the controllers and the scheduler (and, as later issues
/// land, web and agent), then run until SIGINT or SIGTERM. A component ending early shuts
/// everything down.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    let node_ipam =
        k1s_controllers::nodeipam::Config::new(&args.cluster_cidr, args.node_cidr_mask_size)
            .map_err(anyhow::Error::msg)?;
    let blocks = 1u128
        .checked_shl(u32::from(
            node_ipam.node_mask_size - node_ipam.cluster_cidr.prefix,
        ))
        .unwrap_or(u128::MAX);
    if args.simulated_nodes as u128 > blocks {
        tracing::warn!(
            nodes = args.simulated_nodes,
            cluster_cidr = %node_ipam.cluster_cidr,
            node_cidr_mask_size = node_ipam.node_mask_size,
            "the cluster CIDR has room for {blocks} nodes only: the others get no pod CIDR, and their pods do not start"
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data directory {}", args.data_dir.display()))?;
    let backend = if args.ephemeral {
        BackendConfig::Memory
    } else {
        BackendConfig::Sled(SledConfig::new(args.data_dir.join("db")))
    };
    let store = k1s_store::open(k1s_store::Config {
        backend,
        history_window: args.history_window,
        history_min_revisions: args.history_min_revisions,
        ..Default::default()
    })
    .context("cannot open the store")?;
    tracing::info!(
        revision = store.current_revision(),
        ephemeral = args.ephemeral,
        data_dir = %args.data_dir.display(),
        "store ready"
    );
    let api = k1s_apiserver::start(
        k1s_apiserver::Config {
            data_dir: args.data_dir.clone(),
            bind_address: args.bind_address,
            port: args.https_listen_port,
            write_kubeconfig: args.write_kubeconfig.clone(),
            event_ttl: args.event_ttl,
            token_auth_file: args.token_auth_file.clone(),
            audit_log_path: args.audit_log_path.clone(),
            audit_log_level: args.audit_log_level,
            authorization: !args.disable_authorization,
        },
        store.clone(),
        shutdown.clone(),
    )
    .await
    .context("cannot start the API server")?;
    tracing::info!(
        address = %api.local_addr,
        kubeconfig = %api.kubeconfig.display(),
        agent = !args.disable_agent,
        node_name = args.node_name.as_deref().unwrap_or(""),
        "k1s server running; use it with: kubectl --kubeconfig {}",
        api.kubeconfig.display()
    );
    // Anything that stops early cancels `shutdown`, which stops the rest, and its error is the
    // process's.
    let options = k1s_controllers::Options {
        node_ipam: Some(node_ipam),
        ..Default::default()
    };
    let controllers = match controllers_client(&api) {
        _ if args.disable_controller_manager => tokio::spawn(std::future::ready(Ok(()))),
        Ok(config) => tokio::spawn(k1s_controllers::run_with(
            config,
            k1s_controllers::Options {
                identity: leader_identity(&args.data_dir),
                ..options
            },
            shutdown.clone(),
        )),
        Err(e) => {
            shutdown.cancel();
            return finish(api, store, Err(e)).await;
        }
    };
    let scheduler_options = k1s_controllers::scheduler::Options {
        bind_delay: args.scheduler_bind_delay,
        identity: leader_identity(&args.data_dir),
    };
    let scheduler = match component_client(&api, "system:kube-scheduler", "kube-scheduler") {
        _ if args.disable_scheduler => tokio::spawn(std::future::ready(Ok(()))),
        Ok(config) => tokio::spawn(k1s_controllers::scheduler::run(
            config,
            scheduler_options,
            shutdown.clone(),
        )),
        Err(e) => {
            shutdown.cancel();
            return finish(api, store, Err(e)).await;
        }
    };
    let simulated = (args.simulated_nodes > 0).then(|| {
        let config = args
            .simulation
            .config(&args.simulated_node_prefix, args.simulated_nodes);
        tokio::spawn(run_simulated_nodes(&api, config, shutdown.clone()))
    });
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    let mut result = controllers
        .await
        .context("the controllers task failed")
        .and_then(|r| r.context("the controllers stopped"))
        .and(
            scheduler
                .await
                .context("the scheduler task failed")
                .and_then(|r| r.context("the scheduler stopped")),
        );
    if let Some(task) = simulated {
        let simulated = task
            .await
            .context("the simulated nodes task failed")
            .and_then(|r| r);
        result = result.and(simulated);
    }
    finish(api, store, result).await
}

/// This server's identity for leader leases: the host name and a digest of the data
/// directory, so a restarted server takes its leases back at once while two servers sharing a
/// store (even on one host) contend.
fn leader_identity(data_dir: &std::path::Path) -> String {
    use std::hash::{Hash, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "k1s".into());
    let path = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    format!("{host}_{:016x}", hasher.finish())
}

/// Wait for the API server to stop, close the store, and return `result` (or the store's error).
async fn finish(
    api: k1s_apiserver::Running,
    store: k1s_store::Store,
    result: anyhow::Result<()>,
) -> anyhow::Result<()> {
    let _ = api.task.await;
    store.close().await.context("closing the store")?;
    result
}

/// The controller manager's connection to this server: loopback when it listens on every
/// address, and a client certificate for `system:kube-controller-manager` minted by the cluster
/// CA at each start (held in memory only). That identity holds only upstream's
/// `system:kube-controller-manager` role: the shared informers list and watch with it, and it
/// gives each controller its own service account and token (`--use-service-account-credentials`).
fn controllers_client(
    api: &k1s_apiserver::Running,
) -> anyhow::Result<k1s_controllers::ClientConfig> {
    component_client(
        api,
        "system:kube-controller-manager",
        "kube-controller-manager",
    )
}

/// An in-process component's connection to this server: loopback when it listens on every
/// address, a client certificate for `user` minted by the cluster CA at each start (held in
/// memory only), and upstream's user agent form `<binary>/v<version> k1s`.
fn component_client(
    api: &k1s_apiserver::Running,
    user: &str,
    binary: &str,
) -> anyhow::Result<k1s_controllers::ClientConfig> {
    client_config(
        api,
        user,
        &[],
        &format!("{binary}/v{} k1s", env!("CARGO_PKG_VERSION")),
    )
}

/// A connection to this server as `user` in `groups`: loopback when it listens on every
/// address, and a client certificate minted by the cluster CA (held in memory only).
fn client_config(
    api: &k1s_apiserver::Running,
    user: &str,
    groups: &[&str],
    user_agent: &str,
) -> anyhow::Result<k1s_controllers::ClientConfig> {
    let credentials = api
        .client_credentials(user, groups)
        .with_context(|| format!("cannot issue the client certificate of {user}"))?;
    let ip = match api.local_addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    Ok(k1s_controllers::ClientConfig {
        server: format!(
            "https://{}",
            std::net::SocketAddr::new(ip, api.local_addr.port())
        ),
        ca_pem: credentials.ca_pem,
        credentials: k1s_controllers::Credentials::Certificate {
            cert_pem: credentials.cert_pem,
            key_pem: credentials.key_pem,
        },
        // Upstream's form: the API server names the field manager after the part before `/`.
        user_agent: user_agent.to_string(),
    })
}

/// Who the embedded simulated nodes act through: this user may impersonate exactly its nodes
/// (the grant lists them) and read nodes and pods, nothing else.
const SIMULATOR_USER: &str = "system:k1s:node-simulator";

/// The embedded simulated nodes: grant `SIMULATOR_USER` the right to act as them (with an admin
/// certificate used for that alone), then run them with a certificate for that user until
/// `shutdown`. A failure shuts the server down.
fn run_simulated_nodes(
    api: &k1s_apiserver::Running,
    config: k1s_agent::simulated::Config,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = anyhow::Result<()>> + use<> {
    let clients = loopback_client(api, "system:k1s:node-simulator-setup", &["system:masters"])
        .and_then(|admin| Ok((admin, loopback_client(api, SIMULATOR_USER, &[])?)));
    async move {
        let result = async {
            let (admin, simulator) = clients?;
            k1s_agent::simulated::grant(&admin, SIMULATOR_USER, &config.names).await?;
            drop(admin);
            k1s_agent::simulated::wait_for_grant(&simulator).await;
            k1s_agent::simulated::run(simulator, config, shutdown.clone()).await?;
            anyhow::Ok(())
        }
        .await
        .context("the simulated nodes stopped");
        if result.is_err() {
            shutdown.cancel();
        }
        result
    }
}

/// A client of this server for `cn` in `groups` (see [`client_config`]).
fn loopback_client(
    api: &k1s_apiserver::Running,
    cn: &str,
    groups: &[&str],
) -> anyhow::Result<k1s_controllers::Client> {
    let config = client_config(api, cn, groups, &simulator_user_agent())?;
    k1s_controllers::Client::new(&config).context("cannot build an api client")
}

/// The simulated nodes' `User-Agent` (and so their field manager, `k1s-simulated-node`).
fn simulator_user_agent() -> String {
    format!("k1s-simulated-node/v{} k1s", env!("CARGO_PKG_VERSION"))
}

/// `k1s simulate`: run simulated nodes against the server a kubeconfig names, acting as each
/// node through the kubeconfig user's right to impersonate, until SIGINT or SIGTERM.
pub async fn run_simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    let config = k1s_agent::kubeconfig::load(&args.kubeconfig, &simulator_user_agent())?;
    let client = k1s_controllers::Client::new(&config)
        .with_context(|| format!("cannot build an api client for {}", config.server))?;
    let config = args.simulation.config(&args.name_prefix, args.nodes);
    k1s_agent::simulated::run(client, config, shutdown).await?;
    Ok(())
}

/// `k1s agent`: joining a server arrives with the agent issue.
pub async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "k1s agent cannot join {} yet: the node agent is not built",
        args.server
    )
}

fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        shutdown.cancel();
    });
    Ok(())
}
