//! Services with ClusterIP and NodePort allocation, endpoints and endpointslices.
//!
//! Allocation follows upstream's registry: a ClusterIP comes from the service CIDR
//! (10.43.0.0/16), dynamic picks from above the static band (the first 256 addresses, where
//! `kubernetes` has .1 and DNS .10), a requested address is honoured or refused; NodePorts come
//! from 30000–32767. Each allocated address or port is one store key created with
//! create-if-absent, so two writers can never both hold it; the key names the owning service.
//! A service write takes its keys first and gives them back if the write does not happen;
//! [`repair`] frees keys leaked by a crash between the two.

use std::net::Ipv4Addr;

use bytes::Bytes;
use k1s_store::{RangeRequest, Store, WriteOutcome};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use serde_json::{Value, json};

use crate::object::{default_field, meta_str};
use crate::registry::{AGE, BASE, Column, NAME, Resource, text};
use crate::status::{ApiError, ApiResult, FieldCause};
use crate::strategy::Strategy;

/// The service CIDR's network address and prefix length.
pub const SERVICE_NETWORK: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 43, 0, 0), 16);
/// The `kubernetes` service's address.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 1);
/// The NodePort range.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;
/// Addresses at the start of the range that dynamic allocation avoids (upstream: size/16,
/// at least 16, at most 256).
const STATIC_BAND: u32 = 256;

const IP_KEYS: &str = "/registry/ranges/serviceips/";
const PORT_KEYS: &str = "/registry/ranges/servicenodeports/";

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn network_size() -> u32 {
    1u32 << (32 - SERVICE_NETWORK.1)
}

fn range_text() -> String {
    format!("{}/{}", SERVICE_NETWORK.0, SERVICE_NETWORK.1)
}

/// The offset of `ip` in the service network, when it is a usable host address.
fn offset_of(ip: Ipv4Addr) -> Option<u32> {
    let offset = u32::from(ip).checked_sub(u32::from(SERVICE_NETWORK.0))?;
    (offset > 0 && offset < network_size() - 1).then_some(offset)
}

fn ip_at(offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(SERVICE_NETWORK.0) + offset)
}

fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn owner(svc: &Value) -> String {
    format!(
        "{}/{}",
        meta_str(svc, "namespace").unwrap_or_default(),
        meta_str(svc, "name").unwrap_or_default()
    )
}

fn ports(svc: &Value) -> Vec<Value> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Go's `%#v` of a `[]string`.
fn go_strings(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Services: defaults (`SetDefaults_Service`) and validation; allocation is async and lives in
/// [`allocate`].
#[derive(Debug)]
pub struct Services;
pub static SERVICES: Services = Services;

fn default_service(svc: &mut Value) {
    if !svc.get("spec").is_some_and(Value::is_object) {
        svc["spec"] = json!({});
    }
    let spec = &mut svc["spec"];
    if spec
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        spec["type"] = json!("ClusterIP");
    }
    let kind = spec["type"].as_str().unwrap_or_default().to_string();
    default_field(spec, "sessionAffinity", json!("None"));
    if spec["sessionAffinity"] == "ClientIP" {
        default_field(
            spec,
            "sessionAffinityConfig",
            json!({"clientIP": {"timeoutSeconds": 10800}}),
        );
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            default_field(port, "protocol", json!("TCP"));
            let target_unset = match port.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                Some(Value::String(s)) => s.is_empty(),
                _ => false,
            };
            if target_unset {
                port["targetPort"] = port.get("port").cloned().unwrap_or(json!(0));
            }
        }
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
        default_field(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if kind == "LoadBalancer" {
        default_field(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if kind != "ExternalName" {
        default_field(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if !svc.get("status").is_some_and(Value::is_object) {
        svc["status"] = json!({"loadBalancer": {}});
    }
}

fn validate_service(svc: &Value) -> ApiResult<()> {
    let name = meta_str(svc, "name").unwrap_or_default();
    let spec = &svc["spec"];
    let kind = service_type(svc);
    let mut causes = Vec::new();
    if !SERVICE_TYPES.contains(&kind) {
        causes.push(FieldCause::not_supported("spec.type", kind, SERVICE_TYPES));
    }
    let cluster_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let headless = cluster_ip == "None";
    let ports = ports(svc);
    if kind == "ExternalName" {
        if spec
            .get("externalName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(FieldCause::required("spec.externalName"));
        }
        if !cluster_ip.is_empty() {
            causes.push(FieldCause::forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
    } else if ports.is_empty() && !headless {
        causes.push(FieldCause::required("spec.ports"));
    }
    if headless && kind != "ClusterIP" && kind != "ExternalName" {
        causes.push(FieldCause::invalid(
            "spec.clusterIPs[0]",
            "None",
            &format!("may not be set to 'None' for {kind} services"),
        ));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let port_name = port.get("name").and_then(Value::as_str).unwrap_or_default();
        if ports.len() > 1 && port_name.is_empty() {
            causes.push(FieldCause::required(&format!("{path}.name")));
        } else if !port_name.is_empty() {
            causes.extend(crate::object::validate_name(
                crate::registry::NameRule::Dns1123Label,
                port_name,
                &format!("{path}.name"),
            ));
            if names.contains(&port_name) {
                causes.push(FieldCause::duplicate(
                    &format!("{path}.name"),
                    &format!("{port_name:?}"),
                ));
            }
            names.push(port_name);
        }
        match port.get("port").and_then(Value::as_i64) {
            Some(p) if (1..=65535).contains(&p) => {}
            Some(p) => causes.push(FieldCause::invalid_raw(
                &format!("{path}.port"),
                &p.to_string(),
                "must be between 1 and 65535, inclusive",
            )),
            None => causes.push(FieldCause::required(&format!("{path}.port"))),
        }
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        if !["SCTP", "TCP", "UDP"].contains(&protocol) {
            causes.push(FieldCause::not_supported(
                &format!("{path}.protocol"),
                protocol,
                &["SCTP", "TCP", "UDP"],
            ));
        }
        match port.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    causes.push(FieldCause::invalid_raw(
                        &format!("{path}.targetPort"),
                        &n.to_string(),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
            Some(Value::String(s)) => {
                let ok = !s.is_empty()
                    && s.len() <= 15
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && s.chars().any(|c| c.is_ascii_lowercase())
                    && !s.starts_with('-')
                    && !s.ends_with('-');
                if !ok {
                    causes.push(FieldCause::invalid(
                        &format!("{path}.targetPort"),
                        s,
                        "must be an IANA_SVC_NAME (at most 15 characters, matching regex [a-z0-9]([a-z0-9-]*[a-z0-9])*, it must contain at least one letter [a-z], and hyphens cannot be adjacent to other hyphens)",
                    ));
                }
            }
            _ => {}
        }
        let node_port = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if node_port != 0 && kind == "ClusterIP" {
            causes.push(FieldCause::forbidden(
                &format!("{path}.nodePort"),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
    }
    if !cluster_ip.is_empty() && !headless && cluster_ip.parse::<std::net::IpAddr>().is_err() {
        causes.push(FieldCause::invalid(
            "spec.clusterIPs[0]",
            cluster_ip,
            "must be empty, 'None', or a valid IP address",
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("", "Service", name, causes))
    }
}

impl Strategy for Services {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        default_service(object);
        // A new service's status is the load-balancer controller's to write.
        object["status"] = json!({"loadBalancer": {}});
        validate_service(object)
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        default_service(object);
        // An update that leaves the cluster IP out keeps the allocated one, as upstream's
        // `PatchAllocatedValues` does, unless the type becomes ExternalName.
        let old_ip = old.pointer("/spec/clusterIP").cloned();
        let new_type = service_type(object).to_string();
        if new_type != "ExternalName" {
            let unset = object
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if unset && let Some(ip) = old_ip.clone() {
                object["spec"]["clusterIP"] = ip;
                if let Some(ips) = old.pointer("/spec/clusterIPs") {
                    object["spec"]["clusterIPs"] = ips.clone();
                }
            }
            // Node ports left out keep theirs (same port and protocol).
            if matches!(new_type.as_str(), "NodePort" | "LoadBalancer") {
                let old_ports = ports(old);
                if let Some(new_ports) = object
                    .pointer_mut("/spec/ports")
                    .and_then(Value::as_array_mut)
                {
                    for port in new_ports {
                        if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                            continue;
                        }
                        let same = old_ports.iter().find(|p| {
                            p.get("port") == port.get("port")
                                && p.get("protocol") == port.get("protocol")
                        });
                        if let Some(node_port) = same.and_then(|p| p.get("nodePort")) {
                            port["nodePort"] = node_port.clone();
                        }
                    }
                }
            }
            for field in ["ipFamilies", "ipFamilyPolicy"] {
                if object.pointer(&format!("/spec/{field}")).is_none()
                    && let Some(v) = old.pointer(&format!("/spec/{field}"))
                {
                    object["spec"][field] = v.clone();
                }
            }
        } else if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                spec.remove(field);
            }
        }
        validate_service(object)?;
        let old_type = service_type(old);
        let name = meta_str(object, "name").unwrap_or_default();
        let new_ip = object.pointer("/spec/clusterIP").cloned();
        if old_type != "ExternalName"
            && new_type != "ExternalName"
            && old_ip.is_some()
            && new_ip != old_ip
        {
            let old_text = old_ip.as_ref().and_then(Value::as_str).unwrap_or_default();
            return Err(ApiError::invalid(
                "",
                "Service",
                name,
                vec![FieldCause::invalid_raw(
                    "spec.clusterIPs[0]",
                    &go_strings(&[old_text]),
                    "may not change once set",
                )],
            ));
        }
        Ok(())
    }
}

/// What a service write took from the allocators and what it gives back once it is stored.
#[derive(Debug, Default)]
#[must_use = "an allocation must be committed or rolled back"]
pub struct Allocation {
    taken_ips: Vec<Ipv4Addr>,
    taken_ports: Vec<u16>,
    freed_ips: Vec<Ipv4Addr>,
    freed_ports: Vec<u16>,
}

impl Allocation {
    /// The write happened: free what the old version held and the new one does not.
    pub async fn commit(self, store: &Store) {
        for ip in self.freed_ips {
            release_key(store, &format!("{IP_KEYS}{ip}")).await;
        }
        for port in self.freed_ports {
            release_key(store, &format!("{PORT_KEYS}{port}")).await;
        }
    }

    /// The write did not happen: give back what was taken.
    pub async fn rollback(self, store: &Store) {
        for ip in self.taken_ips {
            release_key(store, &format!("{IP_KEYS}{ip}")).await;
        }
        for port in self.taken_ports {
            release_key(store, &format!("{PORT_KEYS}{port}")).await;
        }
    }
}

async fn release_key(store: &Store, key: &str) {
    if let Err(e) = store.delete(key.as_bytes(), None).await {
        tracing::warn!(key, error = %e, "cannot release an allocation; startup repair frees it");
    }
}

fn store_err(e: k1s_store::Error) -> ApiError {
    ApiError::internal(format!("allocator: {e}"))
}

/// Take `key` for `owner` unless someone holds it.
async fn take(store: &Store, key: &str, owner: &str) -> ApiResult<bool> {
    match store
        .create(key.as_bytes(), Bytes::from(owner.to_string()), None)
        .await
        .map_err(store_err)?
    {
        WriteOutcome::Committed { .. } => Ok(true),
        WriteOutcome::Conflict { .. } => Ok(false),
    }
}

async fn held(store: &Store, key: &str) -> ApiResult<bool> {
    let (_, kv) = store.get(key.as_bytes(), None).await.map_err(store_err)?;
    Ok(kv.is_some())
}

fn ip_invalid(name: &str, ip: &str, detail: &str) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![FieldCause::invalid_raw(
            "spec.clusterIPs",
            &go_strings(&[ip]),
            &format!("failed to allocate IP {ip}: {detail}"),
        )],
    )
}

/// Allocate a cluster IP: `requested`, or a free one above the static band (then within it).
async fn allocate_ip(
    store: &Store,
    name: &str,
    owner: &str,
    requested: Option<&str>,
    dry_run: bool,
    alloc: &mut Allocation,
) -> ApiResult<Ipv4Addr> {
    if let Some(requested) = requested {
        let ip: Ipv4Addr = requested.parse().map_err(|_| {
            ip_invalid(
                name,
                requested,
                "must be empty, 'None', or a valid IP address",
            )
        })?;
        if offset_of(ip).is_none() {
            return Err(ip_invalid(
                name,
                requested,
                &format!(
                    "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    range_text()
                ),
            ));
        }
        let key = format!("{IP_KEYS}{ip}");
        let free = if dry_run {
            !held(store, &key).await?
        } else {
            take(store, &key, owner).await?
        };
        if !free {
            return Err(ip_invalid(
                name,
                requested,
                "provided IP is already allocated",
            ));
        }
        if !dry_run {
            alloc.taken_ips.push(ip);
        }
        return Ok(ip);
    }
    let size = network_size();
    let band = STATIC_BAND.min(size / 2);
    // Random probes above the static band, then a scan of everything.
    let mut candidates: Vec<u32> = (0..32)
        .map(|_| rand::random_range(band..size - 1))
        .collect();
    candidates.extend(band..size - 1);
    candidates.extend(1..band);
    for offset in candidates {
        let ip = ip_at(offset);
        let key = format!("{IP_KEYS}{ip}");
        let free = if dry_run {
            !held(store, &key).await?
        } else {
            take(store, &key, owner).await?
        };
        if free {
            if !dry_run {
                alloc.taken_ips.push(ip);
            }
            return Ok(ip);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a serviceIP: range is full",
    ))
}

/// Allocate a node port for `ports[index]`: its requested one, or a free one.
async fn allocate_port(
    store: &Store,
    name: &str,
    owner: &str,
    index: usize,
    requested: Option<u16>,
    dry_run: bool,
    alloc: &mut Allocation,
) -> ApiResult<u16> {
    let try_port = |port: u16| async move {
        let key = format!("{PORT_KEYS}{port}");
        if dry_run {
            Ok::<bool, ApiError>(!held(store, &key).await?)
        } else {
            take(store, &key, owner).await
        }
    };
    if let Some(port) = requested {
        if try_port(port).await? {
            if !dry_run {
                alloc.taken_ports.push(port);
            }
            return Ok(port);
        }
        return Err(ApiError::invalid(
            "",
            "Service",
            name,
            vec![FieldCause::invalid_raw(
                &format!("spec.ports[{index}].nodePort"),
                &port.to_string(),
                "provided port is already allocated",
            )],
        ));
    }
    let mut candidates: Vec<u16> = (0..32).map(|_| rand::random_range(NODE_PORTS)).collect();
    candidates.extend(NODE_PORTS);
    for port in candidates {
        if try_port(port).await? {
            if !dry_run {
                alloc.taken_ports.push(port);
            }
            return Ok(port);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a nodePort: range is full",
    ))
}

fn cluster_ip_of(svc: &Value) -> Option<Ipv4Addr> {
    svc.pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

fn node_ports_of(svc: &Value) -> Vec<u16> {
    ports(svc)
        .iter()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
        .filter_map(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .collect()
}

/// Give `new` (already defaulted and validated) its cluster IP, IP families and node ports,
/// taking them from the allocators; `old` is the stored version on an update. Whatever `old`
/// held that `new` does not is freed by [`Allocation::commit`].
pub async fn allocate(
    store: &Store,
    old: Option<&Value>,
    new: &mut Value,
    dry_run: bool,
) -> ApiResult<Allocation> {
    let mut alloc = Allocation::default();
    match allocate_into(store, old, new, dry_run, &mut alloc).await {
        Ok(()) => Ok(alloc),
        Err(e) => {
            alloc.rollback(store).await;
            Err(e)
        }
    }
}

async fn allocate_into(
    store: &Store,
    old: Option<&Value>,
    new: &mut Value,
    dry_run: bool,
    alloc: &mut Allocation,
) -> ApiResult<()> {
    let name = meta_str(new, "name").unwrap_or_default().to_string();
    let owner = owner(new);
    let kind = service_type(new).to_string();
    let old_ip = old.and_then(cluster_ip_of);
    let old_ports = old.map(node_ports_of).unwrap_or_default();

    if kind != "ExternalName" {
        let requested = new
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let has_selector = new
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .is_some_and(|s| !s.is_empty());
        match requested.as_deref() {
            Some("None") => {
                new["spec"]["clusterIPs"] = json!(["None"]);
                if new.pointer("/spec/ipFamilyPolicy").is_none() {
                    let policy = if has_selector {
                        "SingleStack"
                    } else {
                        "RequireDualStack"
                    };
                    new["spec"]["ipFamilyPolicy"] = json!(policy);
                }
            }
            Some(ip) if old_ip.is_some_and(|o| o.to_string() == ip) => {}
            requested => {
                let ip = allocate_ip(store, &name, &owner, requested, dry_run, alloc).await?;
                new["spec"]["clusterIP"] = json!(ip.to_string());
                new["spec"]["clusterIPs"] = json!([ip.to_string()]);
            }
        }
        if new.pointer("/spec/ipFamilies").is_none() {
            new["spec"]["ipFamilies"] = json!(["IPv4"]);
        }
        if new.pointer("/spec/ipFamilyPolicy").is_none() {
            new["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        }
    }
    let wants_node_ports = match kind.as_str() {
        "NodePort" => true,
        "LoadBalancer" => new
            .pointer("/spec/allocateLoadBalancerNodePorts")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        _ => false,
    };
    let count = ports(new).len();
    for index in 0..count {
        let port = &new["spec"]["ports"][index];
        let current = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if !wants_node_ports {
            if current == 0 {
                continue;
            }
            if kind != "LoadBalancer" {
                // Leaving NodePort/LoadBalancer drops node ports.
                if let Some(p) = new["spec"]["ports"][index].as_object_mut() {
                    p.remove("nodePort");
                }
                continue;
            }
        }
        let requested = match current {
            0 => None,
            p => match u16::try_from(p).ok().filter(|p| NODE_PORTS.contains(p)) {
                Some(p) => Some(p),
                None => {
                    return Err(ApiError::invalid(
                        "",
                        "Service",
                        &name,
                        vec![FieldCause::invalid_raw(
                            &format!("spec.ports[{index}].nodePort"),
                            &p.to_string(),
                            &format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                NODE_PORTS.start(),
                                NODE_PORTS.end()
                            ),
                        )],
                    ));
                }
            },
        };
        // A port the old version already held stays held.
        if let Some(p) = requested.filter(|p| old_ports.contains(p)) {
            new["spec"]["ports"][index]["nodePort"] = json!(p);
            continue;
        }
        let port = allocate_port(store, &name, &owner, index, requested, dry_run, alloc).await?;
        new["spec"]["ports"][index]["nodePort"] = json!(port);
    }
    if let Some(ip) = old_ip.filter(|ip| cluster_ip_of(new) != Some(*ip)) {
        alloc.freed_ips.push(ip);
    }
    let kept = node_ports_of(new);
    alloc
        .freed_ports
        .extend(old_ports.into_iter().filter(|p| !kept.contains(p)));
    Ok(())
}

/// Free everything a deleted service held.
pub async fn release(store: &Store, svc: &Value) {
    Allocation {
        freed_ips: cluster_ip_of(svc).into_iter().collect(),
        freed_ports: node_ports_of(svc),
        ..Allocation::default()
    }
    .commit(store)
    .await;
}

/// Free allocations whose service does not exist or no longer holds them (a crash between
/// taking a key and writing the service). Runs at startup, before requests are served.
pub async fn repair(store: &Store, services: &Resource) -> ApiResult<usize> {
    let mut freed = 0;
    for (prefix, is_ip) in [(IP_KEYS, true), (PORT_KEYS, false)] {
        let page = store
            .range(RangeRequest {
                prefix: Bytes::from(prefix),
                ..RangeRequest::default()
            })
            .await
            .map_err(store_err)?;
        for kv in page.kvs {
            let what = String::from_utf8_lossy(&kv.key[prefix.len()..]).to_string();
            let holder = String::from_utf8_lossy(&kv.value).to_string();
            let (ns, name) = holder.split_once('/').unwrap_or(("", &holder));
            let key = services.key(Some(ns), name);
            let (_, svc) = store.get(key.as_bytes(), None).await.map_err(store_err)?;
            let svc: Option<Value> = svc.and_then(|kv| serde_json::from_slice(&kv.value).ok());
            let holds = svc.is_some_and(|svc| {
                if is_ip {
                    cluster_ip_of(&svc).is_some_and(|ip| ip.to_string() == what)
                } else {
                    node_ports_of(&svc).iter().any(|p| p.to_string() == what)
                }
            });
            if !holds {
                tracing::info!(allocation = %what, holder = %holder, "freeing a leaked service allocation");
                release_key(store, &String::from_utf8_lossy(&kv.key)).await;
                freed += 1;
            }
        }
    }
    Ok(freed)
}

/// `80/TCP,443:30443/TCP`, as upstream's `makePortString`.
fn port_string(svc: &Value) -> Value {
    let pieces: Vec<String> = ports(svc)
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) {
                0 => format!("{port}/{protocol}"),
                node => format!("{port}:{node}/{protocol}"),
            }
        })
        .collect();
    json!(if pieces.is_empty() {
        "<none>".to_string()
    } else {
        pieces.join(",")
    })
}

/// EXTERNAL-IP, as upstream's `getServiceExternalIP` (narrow output).
fn external_ip(svc: &Value) -> Value {
    let external: Vec<&str> = svc
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let text = match service_type(svc) {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            let ingress: Vec<&str> = svc
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| {
                            i.get("ip")
                                .or_else(|| i.get("hostname"))
                                .and_then(Value::as_str)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut lb = ingress.join(",");
            if lb.len() > 16 {
                lb = format!("{}...", &lb[..13]);
            }
            match (lb.is_empty(), external.is_empty()) {
                (_, false) => {
                    let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
                    all.extend(external);
                    all.join(",")
                }
                (false, true) => lb,
                (true, true) => "<pending>".to_string(),
            }
        }
        "ExternalName" => svc
            .pointer("/spec/externalName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => "<unknown>".to_string(),
    };
    json!(text)
}

/// A label map as `labels.FormatLabels` prints it: sorted `k=v`, or `<none>`.
pub fn format_labels(map: Option<&Value>) -> Value {
    let mut pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    json!(if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join(",")
    })
}

/// A list of at most three entries, then ` + N more...` (upstream's `listWithMoreString`).
fn list_with_more(items: Vec<String>, empty: &str) -> Value {
    const MAX: usize = 3;
    let count = items.len();
    let mut text = items.into_iter().take(MAX).collect::<Vec<_>>().join(",");
    if count > MAX {
        text = format!("{text} + {} more...", count - MAX);
    } else if text.is_empty() {
        text = empty.to_string();
    }
    json!(text)
}

/// ENDPOINTS of an Endpoints object, as upstream's `formatEndpoints`.
fn endpoints_string(ep: &Value) -> Value {
    let subsets = ep
        .get("subsets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if subsets.is_empty() {
        return json!("<none>");
    }
    let mut items = Vec::new();
    for subset in &subsets {
        let addresses: Vec<&str> = subset
            .get("addresses")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|a| a["ip"].as_str()).collect())
            .unwrap_or_default();
        let ports: Vec<i64> = subset
            .get("ports")
            .and_then(Value::as_array)
            .map(|p| p.iter().filter_map(|p| p["port"].as_i64()).collect())
            .unwrap_or_default();
        if ports.is_empty() {
            items.extend(addresses.iter().map(|a| a.to_string()));
        } else {
            for port in &ports {
                for address in &addresses {
                    let host = if address.contains(':') {
                        format!("[{address}]")
                    } else {
                        address.to_string()
                    };
                    items.push(format!("{host}:{port}"));
                }
            }
        }
    }
    list_with_more(items, "")
}

fn slice_ports(slice: &Value) -> Value {
    let items: Vec<String> = slice
        .get("ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .map(
                    |p| match (p.get("port").and_then(Value::as_i64), p.get("name")) {
                        (Some(port), _) => port.to_string(),
                        (None, Some(Value::String(name))) => name.clone(),
                        _ => "*".to_string(),
                    },
                )
                .collect()
        })
        .unwrap_or_default();
    list_with_more(items, "<unset>")
}

fn slice_endpoints(slice: &Value) -> Value {
    let items: Vec<String> = slice
        .get("endpoints")
        .and_then(Value::as_array)
        .map(|eps| {
            eps.iter()
                .flat_map(|e| {
                    e.get("addresses")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    list_with_more(items, "<unset>")
}

/// Endpoints: ports default to TCP.
#[derive(Debug)]
pub struct Endpoints;
pub static ENDPOINTS: Endpoints = Endpoints;

impl Strategy for Endpoints {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        if let Some(subsets) = object.get_mut("subsets").and_then(Value::as_array_mut) {
            for subset in subsets {
                if let Some(ports) = subset.get_mut("ports").and_then(Value::as_array_mut) {
                    for port in ports {
                        default_field(port, "protocol", json!("TCP"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// EndpointSlices: addressType required and immutable; port protocols default to TCP.
#[derive(Debug)]
pub struct EndpointSlices;
pub static ENDPOINT_SLICES: EndpointSlices = EndpointSlices;

const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];

impl Strategy for EndpointSlices {
    fn prepare_create(&self, object: &mut Value) -> ApiResult<()> {
        let name = meta_str(object, "name").unwrap_or_default().to_string();
        if let Some(ports) = object.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports {
                default_field(port, "protocol", json!("TCP"));
            }
        }
        match object.get("addressType").and_then(Value::as_str) {
            None | Some("") => Err(ApiError::invalid(
                "discovery.k8s.io",
                "EndpointSlice",
                &name,
                vec![FieldCause::required("addressType")],
            )),
            Some(t) if !ADDRESS_TYPES.contains(&t) => Err(ApiError::invalid(
                "discovery.k8s.io",
                "EndpointSlice",
                &name,
                vec![FieldCause::not_supported("addressType", t, ADDRESS_TYPES)],
            )),
            Some(_) => Ok(()),
        }
    }

    fn prepare_update(&self, old: &Value, object: &mut Value) -> ApiResult<()> {
        self.prepare_create(object)?;
        if old.get("addressType") != object.get("addressType") {
            let name = meta_str(object, "name").unwrap_or_default();
            let value = object["addressType"].as_str().unwrap_or_default();
            return Err(ApiError::invalid(
                "discovery.k8s.io",
                "EndpointSlice",
                name,
                vec![FieldCause::invalid(
                    "addressType",
                    value,
                    "field is immutable",
                )],
            ));
        }
        Ok(())
    }
}

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    Column {
        name: "Type",
        type_: "string",
        format: "",
        description: "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types",
        priority: 0,
        cell: |o| json!(service_type(o)),
    },
    Column {
        name: "Cluster-IP",
        type_: "string",
        format: "",
        description: "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
        priority: 0,
        cell: |o| {
            o.pointer("/spec/clusterIPs/0")
                .cloned()
                .unwrap_or(json!("<none>"))
        },
    },
    Column {
        name: "External-IP",
        type_: "string",
        format: "",
        description: "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.",
        priority: 0,
        cell: external_ip,
    },
    Column {
        name: "Port(s)",
        type_: "string",
        format: "",
        description: "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
        priority: 0,
        cell: port_string,
    },
    AGE,
    Column {
        name: "Selector",
        type_: "string",
        format: "",
        description: "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/",
        priority: 1,
        cell: |o| format_labels(o.pointer("/spec/selector")),
    },
];

/// The resources this module serves.
pub static RESOURCES: &[Resource] = &[
    Resource {
        kind: "Service",
        plural: "services",
        singular: "service",
        short_names: &["svc"],
        categories: &["all"],
        subresources: &["status"],
        columns: SERVICE_COLUMNS,
        strategy: &SERVICES,
        schema: |g| g.subschema_for::<core::Service>(),
        ..BASE
    },
    Resource {
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        short_names: &["ep"],
        columns: &[
            NAME,
            Column {
                name: "Endpoints",
                type_: "string",
                format: "",
                description: "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.",
                priority: 0,
                cell: endpoints_string,
            },
            AGE,
        ],
        strategy: &ENDPOINTS,
        schema: |g| g.subschema_for::<core::Endpoints>(),
        ..BASE
    },
    Resource {
        group: "discovery.k8s.io",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        columns: &[
            NAME,
            Column {
                name: "AddressType",
                type_: "string",
                format: "",
                description: "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.",
                priority: 0,
                cell: |o| text(o, "/addressType", ""),
            },
            Column {
                name: "Ports",
                type_: "string",
                format: "",
                description: "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.",
                priority: 0,
                cell: slice_ports,
            },
            Column {
                name: "Endpoints",
                type_: "string",
                format: "",
                description: "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.",
                priority: 0,
                cell: slice_endpoints,
            },
            AGE,
        ],
        strategy: &ENDPOINT_SLICES,
        schema: |g| g.subschema_for::<discovery::EndpointSlice>(),
        ..BASE
    },
];

/// The `default/kubernetes` Service, Endpoints and EndpointSlice pointing at this server.
pub fn kubernetes_objects(address: &str, port: u16) -> [(&'static str, Value); 3] {
    let port_entry = json!({"name": "https", "port": port, "protocol": "TCP"});
    [
        (
            "services",
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": KUBERNETES_SERVICE_IP.to_string(),
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                    "sessionAffinity": "None",
                },
            }),
        ),
        (
            "endpoints",
            json!({
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": [{"addresses": [{"ip": address}], "ports": [port_entry.clone()]}],
            }),
        ),
        (
            "endpointslices",
            json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
                "addressType": if address.contains(':') { "IPv6" } else { "IPv4" },
                "endpoints": [{"addresses": [address], "conditions": {"ready": true}}],
                "ports": [port_entry],
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_types_protocols_and_target_ports() {
        let mut svc = json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}], "selector": {"app": "web"}}});
        SERVICES.prepare_create(&mut svc).unwrap();
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(svc["spec"]["sessionAffinity"], "None");
    }

    #[test]
    fn validation_messages_match_upstream() {
        let mut svc =
            json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 0}, {"port": 80}]}});
        let err = SERVICES.prepare_create(&mut svc).unwrap_err();
        assert_eq!(
            err.message,
            "Service \"web\" is invalid: [spec.ports[0].name: Required value, spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ports[1].name: Required value]"
        );
        let mut svc =
            json!({"metadata": {"name": "web"}, "spec": {"type": "Foo", "ports": [{"port": 80}]}});
        let err = SERVICES.prepare_create(&mut svc).unwrap_err();
        assert!(
            err.message.contains("spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn printer_cells() {
        let svc = json!({"spec": {"type": "NodePort", "clusterIPs": ["10.43.7.1"], "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}], "selector": {"b": "2", "a": "1"}}});
        assert_eq!(port_string(&svc), "80:30080/TCP,53/UDP");
        assert_eq!(external_ip(&svc), "<none>");
        assert_eq!(format_labels(svc.pointer("/spec/selector")), "a=1,b=2");
        let lb = json!({"spec": {"type": "LoadBalancer"}});
        assert_eq!(external_ip(&lb), "<pending>");
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(
            endpoints_string(&ep),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
        );
        assert_eq!(endpoints_string(&json!({})), "<none>");
        let slice = json!({"ports": [{"port": 80}, {"name": "x"}], "endpoints": []});
        assert_eq!(slice_ports(&slice), "80,x");
        assert_eq!(slice_endpoints(&slice), "<unset>");
    }

    #[test]
    fn offsets_exclude_network_and_broadcast() {
        assert_eq!(offset_of(Ipv4Addr::new(10, 43, 0, 0)), None);
        assert_eq!(offset_of(Ipv4Addr::new(10, 43, 255, 255)), None);
        assert_eq!(offset_of(Ipv4Addr::new(10, 43, 0, 1)), Some(1));
        assert_eq!(offset_of(Ipv4Addr::new(10, 44, 0, 1)), None);
    }
}
