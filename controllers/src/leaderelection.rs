//! Leader election through a coordination.k8s.io Lease, as client-go's leaderelection: acquire the lease (or wait while another holder renews it), renew it every retry period, and give up leadership when renewal fails for the renew deadline, so that several servers sharing one store run each control loop once.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, Resource};

/// kube-controller-manager's and kube-scheduler's defaults.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

fn leases() -> Resource {
    Resource::new("coordination.k8s.io", "v1", "leases", true)
}

fn micro_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Contends for one Lease.
pub struct Elector {
    client: Client,
    namespace: String,
    name: String,
    identity: String,
    /// The holder record last seen and when it changed (client-go judges expiry by its own
    /// clock, not the holder's timestamps).
    observed: Option<(Value, Instant)>,
}

/// This process's identity as a lease holder: `<host>_<random>`, as upstream's.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "k1s".into());
    format!("{host}_{:016x}", rand::random::<u64>())
}

impl Elector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: String) -> Elector {
        Elector {
            client,
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity,
            observed: None,
        }
    }

    /// One `tryAcquireOrRenew`: true while this process holds the lease.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let now = micro_now();
        let current = match self
            .client
            .get(&leases(), Some(&self.namespace), &self.name)
            .await
        {
            Ok(lease) => lease,
            Err(e) if e.is_not_found() => {
                let lease = json!({
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {
                        "holderIdentity": self.identity,
                        "leaseDurationSeconds": LEASE_DURATION.as_secs(),
                        "acquireTime": now,
                        "renewTime": now,
                        "leaseTransitions": 0,
                    },
                });
                return self
                    .client
                    .create(&leases(), Some(&self.namespace), &lease)
                    .await
                    .is_ok();
            }
            Err(e) => {
                tracing::debug!(lease = %self.name, error = %crate::error_chain(&e), "cannot read the leader lease");
                return false;
            }
        };
        let spec = current.get("spec").cloned().unwrap_or(json!({}));
        let holder = spec
            .get("holderIdentity")
            .and_then(Value::as_str)
            .unwrap_or("");
        match &self.observed {
            Some((seen, _)) if *seen == spec => {}
            _ => self.observed = Some((spec.clone(), Instant::now())),
        }
        let duration = spec
            .get("leaseDurationSeconds")
            .and_then(Value::as_u64)
            .map_or(LEASE_DURATION, Duration::from_secs);
        let expired = self
            .observed
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() > duration);
        if !holder.is_empty() && holder != self.identity && !expired {
            return false;
        }
        let mut lease = current.clone();
        let transitions = spec
            .get("leaseTransitions")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        lease["spec"]["holderIdentity"] = json!(self.identity);
        lease["spec"]["leaseDurationSeconds"] = json!(LEASE_DURATION.as_secs());
        lease["spec"]["renewTime"] = json!(now);
        if holder != self.identity {
            lease["spec"]["acquireTime"] = json!(now);
            lease["spec"]["leaseTransitions"] = json!(transitions + 1);
        }
        match self
            .client
            .update(&leases(), Some(&self.namespace), &self.name, &lease)
            .await
        {
            Ok(updated) => {
                self.observed = updated.get("spec").cloned().map(|s| (s, Instant::now()));
                true
            }
            Err(_) => false,
        }
    }

    /// Wait until this process leads (false if `shutdown` came first).
    pub async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        loop {
            if self.try_acquire_or_renew().await {
                tracing::info!(lease = %format!("{}/{}", self.namespace, self.name), identity = %self.identity, "acquired the leader lease");
                return true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(RETRY_PERIOD) => {}
            }
        }
    }

    /// Give the lease up (client-go's ReleaseOnCancel), so a successor need not wait for it to
    /// expire. Best effort.
    pub async fn release(&mut self) {
        let Ok(mut lease) = self
            .client
            .get(&leases(), Some(&self.namespace), &self.name)
            .await
        else {
            return;
        };
        if lease
            .pointer("/spec/holderIdentity")
            .and_then(Value::as_str)
            != Some(&self.identity)
        {
            return;
        }
        lease["spec"]["holderIdentity"] = Value::Null;
        lease["spec"]["leaseDurationSeconds"] = json!(1);
        lease["spec"]["renewTime"] = json!(micro_now());
        let _ = self
            .client
            .update(&leases(), Some(&self.namespace), &self.name, &lease)
            .await;
    }

    /// Renew every retry period until `shutdown`; returns when renewal has failed for the
    /// renew deadline (leadership lost) or at shutdown.
    pub async fn keep(&mut self, shutdown: &CancellationToken) -> bool {
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return true,
                _ = tokio::time::sleep(RETRY_PERIOD) => {}
            }
            if self.try_acquire_or_renew().await {
                last_renewed = Instant::now();
            } else if last_renewed.elapsed() > RENEW_DEADLINE {
                tracing::error!(lease = %self.name, "leader lease lost");
                return false;
            }
        }
    }
}
