//! The command line: `k1s server`, `k1s agent`, `k1s simulate`, `k1s version`, their flags, and logging set-up.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The Kubernetes API version k1s serves.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

pub fn version_string() -> String {
    format!(
        "v{} (Kubernetes {KUBERNETES_VERSION})",
        env!("CARGO_PKG_VERSION")
    )
}

#[derive(Parser, Debug)]
#[command(name = "k1s", version = env!("CARGO_PKG_VERSION"), about = "Kubernetes in one binary")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "K1S_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the control plane (API server, store, controllers, scheduler, dashboard) and, unless
    /// disabled, an agent for this machine.
    Server(Box<ServerArgs>),
    /// Run a node agent that joins this machine to a server.
    Agent(AgentArgs),
    /// Add simulated nodes to a running cluster (as `k1s server --simulated-nodes` does), until
    /// interrupted.
    Simulate(SimulateArgs),
    /// Print the version.
    Version,
}

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Where the store, certificates, images and agent state live.
    #[arg(long, default_value = "/var/lib/k1s", env = "K1S_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Keep the cluster state in memory only (the data dir still holds certificates, images and
    /// agent state).
    #[arg(long)]
    pub ephemeral: bool,
    /// Address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: std::net::IpAddr,
    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    pub https_listen_port: u16,
    /// Also write the admin kubeconfig to this path (it is always written to
    /// `<data-dir>/kubeconfig.yaml`).
    #[arg(long, short = 'o')]
    pub write_kubeconfig: Option<PathBuf>,
    /// Do not run the embedded agent (no pods run on this machine).
    #[arg(long)]
    pub disable_agent: bool,
    /// Do not run the controllers (as k3s's flag of the same name): the API alone, for
    /// debugging and API tests.
    #[arg(long)]
    pub disable_controller_manager: bool,
    /// Do not run the scheduler (as k3s's flag of the same name).
    #[arg(long)]
    pub disable_scheduler: bool,
    /// This machine's node name (defaults to the host name).
    #[arg(long, env = "K1S_NODE_NAME")]
    pub node_name: Option<String>,
    /// How long events live after their last update.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub event_ttl: Duration,
    /// Keep store history for at least this long (e.g. 5m, 90s).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub history_window: Duration,
    /// Keep at least this many revisions of store history.
    #[arg(long, default_value_t = 10_000)]
    pub history_min_revisions: u64,
    /// Static bearer tokens, one `token,user,uid,"group1,group2"` line each (upstream's format).
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Append an `audit.k8s.io/v1` Event (one JSON line) for every authenticated request to
    /// this file (created 0600).
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,
    /// What each audit event records: Metadata, or Request (also the request body).
    #[arg(long, default_value = "Metadata")]
    pub audit_log_level: k1s_apiserver::AuditLevel,
    /// Allow every authenticated request (no Node or RBAC authorization); for debugging only.
    #[arg(long)]
    pub disable_authorization: bool,
    /// Delay every bind of the scheduler (tests use it to show assumed pods at work).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration, hide = true)]
    pub scheduler_bind_delay: Duration,
    /// The CIDR range pod IPs come from: each node is given a block of it as `spec.podCIDR`.
    #[arg(long, default_value = k1s_controllers::nodeipam::DEFAULT_CLUSTER_CIDR)]
    pub cluster_cidr: String,
    /// The prefix length of each node's block of the cluster CIDR (24 for IPv4, 64 for IPv6
    /// by default).
    #[arg(long)]
    pub node_cidr_mask_size: Option<u8>,
    /// Register this many simulated nodes (named `<--simulated-node-prefix><i>`): Nodes with a
    /// Lease whose pods run by their status alone (no containers), for scheduling and scale
    /// tests. Each needs a block of `--cluster-cidr`: more than 256 nodes need a larger one
    /// (e.g. 10.0.0.0/8) or a longer `--node-cidr-mask-size`.
    #[arg(long, default_value_t = 0)]
    pub simulated_nodes: usize,
    /// The names of the simulated nodes start with this.
    #[arg(long, default_value = "sim-node-")]
    pub simulated_node_prefix: String,
    #[command(flatten)]
    pub simulation: SimulationArgs,
}

/// How simulated nodes behave (`k1s server --simulated-nodes`, `k1s simulate`).
#[derive(Args, Debug, Clone)]
pub struct SimulationArgs {
    /// Each simulated node's capacity (all of it allocatable), as
    /// `cpu=32,memory=256Gi,pods=110,ephemeral-storage=1Ti`; resources left out keep these
    /// defaults.
    #[arg(
        long,
        default_value = "cpu=32,memory=256Gi,pods=110,ephemeral-storage=1Ti"
    )]
    pub simulated_node_capacity: k1s_agent::simulated::objects::Capacity,
    /// How often each simulated node renews its Lease in kube-node-lease.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub simulated_node_lease_period: Duration,
    /// How long after a pod is bound to a simulated node it is Running.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub simulated_pod_start_delay: Duration,
    /// How long after a pod on a simulated node is marked for deletion the node finishes the
    /// deletion.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub simulated_pod_delete_delay: Duration,
}

impl SimulationArgs {
    /// The simulator's configuration for `count` nodes named `<prefix><i>`.
    pub fn config(&self, prefix: &str, count: usize) -> k1s_agent::simulated::Config {
        k1s_agent::simulated::Config {
            capacity: self.simulated_node_capacity.clone(),
            lease_period: self.simulated_node_lease_period,
            pod_start_delay: self.simulated_pod_start_delay,
            pod_delete_delay: self.simulated_pod_delete_delay,
            ..k1s_agent::simulated::Config::new(prefix, count)
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// A kubeconfig whose current context may impersonate nodes (an admin's).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// How many nodes to add.
    #[arg(long)]
    pub nodes: usize,
    /// The nodes are named `<prefix><i>`; give each simulator its own prefix.
    #[arg(long, default_value = "sim-node-")]
    pub name_prefix: String,
    #[command(flatten)]
    pub simulation: SimulationArgs,
}

#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The server to join, e.g. https://10.0.0.1:6443.
    #[arg(long, env = "K1S_URL")]
    pub server: String,
    /// The join token printed by the server.
    #[arg(long, env = "K1S_TOKEN")]
    pub token: String,
    /// Where the agent keeps images and pod state.
    #[arg(long, default_value = "/var/lib/k1s", env = "K1S_DATA_DIR")]
    pub data_dir: PathBuf,
    /// This machine's node name (defaults to the host name).
    #[arg(long, env = "K1S_NODE_NAME")]
    pub node_name: Option<String>,
}

pub fn init_logging(format: &LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("K1S_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
