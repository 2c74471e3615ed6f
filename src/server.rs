//! `k1s server` and `k1s agent`: start the pieces in dependency order and stop them together.

use anyhow::Context;
use k1s_store::{BackendConfig, SledConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::{AgentArgs, ServerArgs};

/// Start the store (and, as later issues land, the API server, controllers, scheduler, web and
/// agent), then run until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
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
    shutdown.cancelled().await;
    tracing::info!("shutting down");
    let _ = api.task.await;
    store.close().await.context("closing the store")?;
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
