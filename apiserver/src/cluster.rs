//! Policy and cluster-configuration resources: rbac.authorization.k8s.io/v1, policy/v1, scheduling.k8s.io/v1, storage.k8s.io/v1, certificates.k8s.io/v1, apiregistration.k8s.io/v1, and core/v1 limitranges, resourcequotas, persistentvolumes and persistentvolumeclaims.

use crate::registry::Resource;

/// The resources this module serves.
pub static RESOURCES: &[Resource] = &[];
