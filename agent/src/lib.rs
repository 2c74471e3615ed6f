//! The node agent: k1s's kubelet and container runtime, running pods as pause-based Linux sandboxes and talking to the cluster only through the API (filled in by the agent issue).
