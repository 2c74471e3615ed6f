//! The request security chain's shared vocabulary: who a request is from ([`UserInfo`]), as authentication establishes it and authorization, admission and audit read it.

use std::collections::BTreeMap;

/// The authenticated user of a request (upstream's `user.Info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The server's own identity, for writes k1s makes itself (bootstrap objects).
    pub fn system() -> UserInfo {
        UserInfo {
            name: "system:apiserver".into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
            extra: BTreeMap::new(),
        }
    }
}
