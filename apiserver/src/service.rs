//! Services with ClusterIP and NodePort allocation, endpoints and endpointslices.

use crate::registry::Resource;

/// The resources this module serves.
pub static RESOURCES: &[Resource] = &[];
