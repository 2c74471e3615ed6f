//! The node agent: k1s's kubelet and container runtime, running pods as pause-based Linux sandboxes and talking to the cluster only through the API (filled in by the agent issue); today its simulated nodes, which talk to the cluster the same way.

pub mod kubeconfig;
pub mod simulated;
