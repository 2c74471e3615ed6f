//! Workload resources: apps/v1 (deployments, replicasets, statefulsets, daemonsets, controllerrevisions), batch/v1 (jobs, cronjobs), and core/v1 replicationcontrollers and podtemplates.

use crate::registry::Resource;

/// The resources this module serves.
pub static RESOURCES: &[Resource] = &[];
