//! PodSecurity: the Pod Security Standards (privileged, baseline, restricted), chosen per namespace by its `pod-security.kubernetes.io/enforce|audit|warn[-version]` labels, with upstream's versioned checks and messages.
//!
//! Enforce rejects pods; warn answers `Warning:` headers and audit annotates the request's audit
//! event (`pod-security.kubernetes.io/audit-violations`), for pods and for workloads with pod
//! templates. A pod's event also names the enforced policy (`.../enforce-policy`). There is no
//! exemption configuration, so no request is exempt (`.../exempt`).

use std::collections::BTreeSet;
use std::fmt;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use super::{Attributes, Lookup, Operation, Plugin, resource};
use crate::object::meta_str;
use crate::status::{ApiError, ApiResult, FieldCause};

const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";
/// Audit annotations (upstream's `AuditAnnotationPrefix` and keys).
const ENFORCE_POLICY: &str = "pod-security.kubernetes.io/enforce-policy";
const AUDIT_VIOLATIONS: &str = "pod-security.kubernetes.io/audit-violations";
const POLICY_ERROR: &str = "pod-security.kubernetes.io/error";
/// Pods a namespace's new enforce level is checked against, at most.
const MAX_PODS_TO_CHECK: usize = 3000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// A level at a policy version (`None`: latest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelVersion {
    pub level: Level,
    pub minor: Option<u32>,
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minor {
            None => write!(f, "{}:latest", self.level.as_str()),
            Some(m) => write!(f, "{}:v1.{m}", self.level.as_str()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

fn parse_version(s: &str) -> Option<Option<u32>> {
    if s == "latest" {
        return Some(None);
    }
    let minor = s.strip_prefix("v1.")?;
    if minor.is_empty()
        || (minor.len() > 1 && minor.starts_with('0'))
        || !minor.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    minor.parse().ok().map(Some)
}

/// Upstream's `PolicyToEvaluate` with the default policy privileged:latest everywhere:
/// the policy and the invalid labels (an invalid enforce level means restricted, invalid audit
/// and warn levels mean privileged, an invalid version latest).
pub fn policy(labels: Option<&Map<String, Value>>) -> (Policy, Vec<FieldCause>) {
    let default = LevelVersion {
        level: Level::Privileged,
        minor: None,
    };
    let mut p = Policy {
        enforce: default,
        audit: default,
        warn: default,
    };
    let mut causes = Vec::new();
    let Some(labels) = labels else {
        return (p, causes);
    };
    let label = |mode: &str| {
        labels
            .get(&format!("{LABEL_PREFIX}{mode}"))
            .and_then(Value::as_str)
    };
    let mut invalid = |mode: &str, value: &str, detail: &str| {
        causes.push(FieldCause::invalid(
            &format!("metadata.labels[{LABEL_PREFIX}{mode}]"),
            value,
            detail,
        ));
    };
    const LEVELS: &str = "must be one of privileged, baseline, restricted";
    const VERSIONS: &str = "must be \"latest\" or \"v1.x\"";
    let mut has_enforce = false;
    let (mut has_warn_level, mut has_warn_version) = (false, false);
    for (mode, fail) in [
        ("enforce", Level::Restricted),
        ("audit", Level::Privileged),
        ("warn", Level::Privileged),
    ] {
        let slot = match mode {
            "enforce" => &mut p.enforce,
            "audit" => &mut p.audit,
            _ => &mut p.warn,
        };
        if let Some(level) = label(mode) {
            match Level::parse(level) {
                Some(l) => {
                    slot.level = l;
                    has_enforce |= mode == "enforce";
                }
                None => {
                    slot.level = fail;
                    invalid(mode, level, LEVELS);
                }
            }
            has_warn_level |= mode == "warn";
        }
        let version_label = format!("{mode}-version");
        if let Some(version) = label(&version_label) {
            match parse_version(version) {
                Some(v) => slot.minor = v,
                None => {
                    slot.minor = None;
                    invalid(&version_label, version, VERSIONS);
                }
            }
            has_warn_version |= mode == "warn";
        }
    }
    // Warn defaults to a stricter enforce level.
    if !has_warn_level && has_enforce && p.enforce.level > p.warn.level {
        p.warn.level = p.enforce.level;
        if !has_warn_version {
            p.warn.minor = p.enforce.minor;
        }
    }
    (p, causes)
}

// ---------------------------------------------------------------------------------------------
// The checks

/// A failed check: its reason and detail.
type Failure = Option<(String, String)>;
type CheckFn = fn(&Value, &Value) -> Failure;

struct Check {
    id: &'static str,
    level: Level,
    /// (first minor version, implementation), increasing.
    versions: &'static [(u32, CheckFn)],
    /// Baseline checks this restricted check replaces.
    overrides: &'static [&'static str],
}

fn pluralize(singular: &str, plural: &str, n: usize) -> String {
    if n == 1 { singular } else { plural }.to_string()
}

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn bool_at(v: &Value, pointer: &str) -> Option<bool> {
    v.pointer(pointer).and_then(Value::as_bool)
}

/// Init containers, containers, then ephemeral containers.
fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|f| spec.get(*f).and_then(Value::as_array).into_iter().flatten())
        .collect()
}

fn name(c: &Value) -> String {
    c.get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn containers_phrase(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

fn fail(reason: &str, detail: String) -> Failure {
    Some((reason.to_string(), detail))
}

fn windows(spec: &Value) -> bool {
    str_at(spec, "/os/name") == Some("windows")
}

fn user_namespace(spec: &Value) -> bool {
    bool_at(spec, "/hostUsers") == Some(false)
}

fn host_namespaces(_: &Value, spec: &Value) -> Failure {
    let set: Vec<&str> = [
        ("hostNetwork", "hostNetwork=true"),
        ("hostPID", "hostPID=true"),
        ("hostIPC", "hostIPC=true"),
    ]
    .iter()
    .filter(|(f, _)| spec.get(*f).and_then(Value::as_bool) == Some(true))
    .map(|(_, t)| *t)
    .collect();
    (!set.is_empty()).then(|| ("host namespaces".to_string(), set.join(", ")))
}

fn privileged(_: &Value, spec: &Value) -> Failure {
    let bad: Vec<String> = containers(spec)
        .into_iter()
        .filter(|c| bool_at(c, "/securityContext/privileged") == Some(true))
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    fail(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    )
}

const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn capabilities_added(c: &Value) -> Vec<String> {
    c.pointer("/securityContext/capabilities/add")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn capabilities_baseline(_: &Value, spec: &Value) -> Failure {
    let mut bad = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let added: Vec<String> = capabilities_added(c)
            .into_iter()
            .filter(|cap| !DEFAULT_CAPABILITIES.contains(&cap.as_str()))
            .collect();
        if !added.is_empty() {
            bad.push(name(c));
            caps.extend(added);
        }
    }
    if bad.is_empty() {
        return None;
    }
    let caps: Vec<String> = caps.into_iter().collect();
    fail(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad),
            join_quote(&caps)
        ),
    )
}

fn host_path_volumes(_: &Value, spec: &Value) -> Failure {
    let bad: Vec<String> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("hostPath").is_some_and(|h| !h.is_null()))
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    fail(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad)
        ),
    )
}

fn host_ports(_: &Value, spec: &Value) -> Failure {
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for c in containers(spec) {
        let used: Vec<String> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        if !used.is_empty() {
            bad.push(name(c));
            ports.extend(used);
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    fail(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn host_probes(_: &Value, spec: &Value) -> Failure {
    let mut bad = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for c in containers(spec) {
        for handler in [
            "/livenessProbe",
            "/readinessProbe",
            "/startupProbe",
            "/lifecycle/postStart",
            "/lifecycle/preStop",
        ] {
            for kind in ["httpGet", "tcpSocket"] {
                if let Some(host) =
                    str_at(c, &format!("{handler}/{kind}/host")).filter(|h| !h.is_empty())
                {
                    bad.insert(name(c));
                    hosts.insert(host.to_string());
                }
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    let bad: Vec<String> = bad.into_iter().collect();
    let hosts: Vec<String> = hosts.into_iter().collect();
    fail(
        "probe or lifecycle host",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(&hosts)
        ),
    )
}

fn app_armor(meta: &Value, spec: &Value) -> Failure {
    let allowed = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    if let Some(t) = str_at(spec, "/securityContext/appArmorProfile/type").filter(|t| !allowed(t)) {
        setters.push("pod".to_string());
        values.insert(t.to_string());
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        if let Some(t) = str_at(c, "/securityContext/appArmorProfile/type").filter(|t| !allowed(t))
        {
            bad.push(name(c));
            values.insert(t.to_string());
        }
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    let mut values: Vec<String> = values.into_iter().collect();
    let mut annotations: Vec<String> = meta
        .get("annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("container.apparmor.security.beta.kubernetes.io/"))
        .filter_map(|(k, v)| {
            let v = v.as_str().unwrap_or("");
            let ok = v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
            (!ok).then(|| format!("{k}={v:?}"))
        })
        .collect();
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(pluralize("annotation", "annotations", annotations.len()));
        values.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        &pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn se_linux(spec: &Value, allowed: &[&str]) -> Failure {
    let mut types = BTreeSet::new();
    let (mut user, mut role) = (false, false);
    let mut valid = |opts: &Value| -> bool {
        let mut ok = true;
        let t = opts.get("type").and_then(Value::as_str).unwrap_or("");
        if !allowed.contains(&t) {
            ok = false;
            types.insert(t.to_string());
        }
        if opts
            .get("user")
            .and_then(Value::as_str)
            .is_some_and(|u| !u.is_empty())
        {
            ok = false;
            user = true;
        }
        if opts
            .get("role")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty())
        {
            ok = false;
            role = true;
        }
        ok
    };
    let mut setters = Vec::new();
    if let Some(opts) = spec
        .pointer("/securityContext/seLinuxOptions")
        .filter(|o| o.is_object())
        && !valid(opts)
    {
        setters.push("pod".to_string());
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        if let Some(opts) = c
            .pointer("/securityContext/seLinuxOptions")
            .filter(|o| o.is_object())
            && !valid(opts)
        {
            bad.push(name(c));
        }
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !types.is_empty() {
        let types: Vec<String> = types.into_iter().collect();
        data.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if user {
        data.push("user may not be set".to_string());
    }
    if role {
        data.push("role may not be set".to_string());
    }
    fail(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    )
}

fn se_linux_1_0(_: &Value, spec: &Value) -> Failure {
    se_linux(
        spec,
        &["", "container_t", "container_init_t", "container_kvm_t"],
    )
}

fn se_linux_1_31(_: &Value, spec: &Value) -> Failure {
    se_linux(
        spec,
        &[
            "",
            "container_t",
            "container_init_t",
            "container_kvm_t",
            "container_engine_t",
        ],
    )
}

fn proc_mount(_: &Value, spec: &Value) -> Failure {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for c in containers(spec) {
        if let Some(t) = str_at(c, "/securityContext/procMount").filter(|t| *t != "Default") {
            bad.push(name(c));
            types.insert(t.to_string());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    fail(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(&types)
        ),
    )
}

fn proc_mount_1_35(meta: &Value, spec: &Value) -> Failure {
    if user_namespace(spec) {
        None
    } else {
        proc_mount(meta, spec)
    }
}

fn valid_seccomp(t: &str) -> bool {
    matches!(t, "Localhost" | "RuntimeDefault")
}

fn seccomp_baseline_1_0(meta: &Value, spec: &Value) -> Failure {
    let valid =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let annotations = meta.get("annotations").and_then(Value::as_object);
    let mut bad = BTreeSet::new();
    let mut check = |key: String| {
        if let Some(v) = annotations
            .and_then(|a| a.get(&key))
            .and_then(Value::as_str)
            && !valid(v)
        {
            bad.insert(format!("{key}={v:?}"));
        }
    };
    check("seccomp.security.alpha.kubernetes.io/pod".to_string());
    for c in containers(spec) {
        check(format!(
            "container.seccomp.security.alpha.kubernetes.io/{}",
            name(c)
        ));
    }
    if bad.is_empty() {
        return None;
    }
    let bad: Vec<String> = bad.into_iter().collect();
    fail(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", bad.len()),
            bad.join(", ")
        ),
    )
}

/// Seccomp types set to something other than RuntimeDefault or Localhost; `required` also
/// names containers that set nothing while the pod sets nothing valid.
fn seccomp(spec: &Value, required: bool) -> Failure {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let mut pod_set = false;
    if let Some(t) = str_at(spec, "/securityContext/seccompProfile/type") {
        if valid_seccomp(t) {
            pod_set = true;
        } else {
            setters.push("pod".to_string());
            values.insert(t.to_string());
        }
    }
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        match str_at(c, "/securityContext/seccompProfile/type") {
            Some(t) if !valid_seccomp(t) => {
                explicit.push(name(c));
                values.insert(t.to_string());
            }
            Some(_) => {}
            None if !pod_set => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        let values: Vec<String> = values.into_iter().collect();
        return fail(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&values)
            ),
        );
    }
    if required && !implicit.is_empty() {
        return fail(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers_phrase(&implicit)
            ),
        );
    }
    None
}

fn seccomp_baseline_1_19(_: &Value, spec: &Value) -> Failure {
    seccomp(spec, false)
}

fn seccomp_restricted_1_19(_: &Value, spec: &Value) -> Failure {
    seccomp(spec, true)
}

fn seccomp_restricted_1_25(meta: &Value, spec: &Value) -> Failure {
    if windows(spec) {
        None
    } else {
        seccomp_restricted_1_19(meta, spec)
    }
}

const SYSCTLS_1_0: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];
const SYSCTLS_1_27: &[&str] = &["net.ipv4.ip_local_reserved_ports"];
const SYSCTLS_1_29: &[&str] = &[
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SYSCTLS_1_32: &[&str] = &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];

fn sysctls(spec: &Value, allowed: &[&[&str]]) -> Failure {
    let bad: Vec<&str> = spec
        .pointer("/securityContext/sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !allowed.iter().any(|set| set.contains(n)))
        .collect();
    (!bad.is_empty()).then(|| ("forbidden sysctls".to_string(), bad.join(", ")))
}

fn sysctls_1_0(_: &Value, spec: &Value) -> Failure {
    sysctls(spec, &[SYSCTLS_1_0])
}
fn sysctls_1_27(_: &Value, spec: &Value) -> Failure {
    sysctls(spec, &[SYSCTLS_1_0, SYSCTLS_1_27])
}
fn sysctls_1_29(_: &Value, spec: &Value) -> Failure {
    sysctls(spec, &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29])
}
fn sysctls_1_32(_: &Value, spec: &Value) -> Failure {
    sysctls(
        spec,
        &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29, SYSCTLS_1_32],
    )
}

fn windows_host_process(_: &Value, spec: &Value) -> Failure {
    let bad: Vec<String> = containers(spec)
        .into_iter()
        .filter(|c| bool_at(c, "/securityContext/windowsOptions/hostProcess") == Some(true))
        .map(name)
        .collect();
    let mut setters = Vec::new();
    if bool_at(spec, "/securityContext/windowsOptions/hostProcess") == Some(true) {
        setters.push("pod".to_string());
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}

fn allow_privilege_escalation_1_8(_: &Value, spec: &Value) -> Failure {
    let bad: Vec<String> = containers(spec)
        .into_iter()
        .filter(|c| bool_at(c, "/securityContext/allowPrivilegeEscalation") != Some(false))
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    fail(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    )
}

fn allow_privilege_escalation_1_25(meta: &Value, spec: &Value) -> Failure {
    if windows(spec) {
        None
    } else {
        allow_privilege_escalation_1_8(meta, spec)
    }
}

fn capabilities_restricted_1_22(_: &Value, spec: &Value) -> Failure {
    let (mut missing_drop, mut adding) = (Vec::new(), Vec::new());
    let mut forbidden = BTreeSet::new();
    for c in containers(spec) {
        let Some(caps) = c
            .pointer("/securityContext/capabilities")
            .filter(|c| c.is_object())
        else {
            missing_drop.push(name(c));
            continue;
        };
        let dropped_all = caps
            .get("drop")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !dropped_all {
            missing_drop.push(name(c));
        }
        let bad: Vec<String> = capabilities_added(c)
            .into_iter()
            .filter(|cap| cap != "NET_BIND_SERVICE")
            .collect();
        if !bad.is_empty() {
            adding.push(name(c));
            forbidden.extend(bad);
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        let forbidden: Vec<String> = forbidden.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    fail("unrestricted capabilities", details.join("; "))
}

fn capabilities_restricted_1_25(meta: &Value, spec: &Value) -> Failure {
    if windows(spec) {
        None
    } else {
        capabilities_restricted_1_22(meta, spec)
    }
}

const ALLOWED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];
const RESTRICTED_VOLUMES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

fn restricted_volumes(_: &Value, spec: &Value) -> Failure {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for v in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let has = |f: &str| v.get(f).is_some_and(|x| !x.is_null());
        if ALLOWED_VOLUMES.iter().any(|f| has(f)) {
            continue;
        }
        bad.push(name(v));
        types.insert(
            RESTRICTED_VOLUMES
                .iter()
                .find(|f| has(f))
                .copied()
                .unwrap_or("unknown")
                .to_string(),
        );
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    fail(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

fn run_as_non_root_1_0(_: &Value, spec: &Value) -> Failure {
    let mut setters = Vec::new();
    let mut pod_ok = false;
    match bool_at(spec, "/securityContext/runAsNonRoot") {
        Some(false) => setters.push("pod".to_string()),
        Some(true) => pod_ok = true,
        None => {}
    }
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in containers(spec) {
        match bool_at(c, "/securityContext/runAsNonRoot") {
            Some(false) => explicit.push(name(c)),
            Some(true) => {}
            None if !pod_ok => implicit.push(name(c)),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        return fail(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if !implicit.is_empty() {
        return fail(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&implicit)
            ),
        );
    }
    None
}

fn run_as_non_root_1_35(meta: &Value, spec: &Value) -> Failure {
    if user_namespace(spec) {
        None
    } else {
        run_as_non_root_1_0(meta, spec)
    }
}

fn run_as_user_1_23(_: &Value, spec: &Value) -> Failure {
    let mut setters = Vec::new();
    if spec
        .pointer("/securityContext/runAsUser")
        .and_then(Value::as_i64)
        == Some(0)
    {
        setters.push("pod".to_string());
    }
    let bad: Vec<String> = containers(spec)
        .into_iter()
        .filter(|c| {
            c.pointer("/securityContext/runAsUser")
                .and_then(Value::as_i64)
                == Some(0)
        })
        .map(name)
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

fn run_as_user_1_35(meta: &Value, spec: &Value) -> Failure {
    if user_namespace(spec) {
        None
    } else {
        run_as_user_1_23(meta, spec)
    }
}

/// Upstream's checks; each list sorted by ID, baseline then restricted (the message order).
static CHECKS: &[Check] = &[
    Check {
        id: "appArmorProfile",
        level: Level::Baseline,
        versions: &[(0, app_armor)],
        overrides: &[],
    },
    Check {
        id: "capabilities_baseline",
        level: Level::Baseline,
        versions: &[(0, capabilities_baseline)],
        overrides: &[],
    },
    Check {
        id: "hostNamespaces",
        level: Level::Baseline,
        versions: &[(0, host_namespaces)],
        overrides: &[],
    },
    Check {
        id: "hostPathVolumes",
        level: Level::Baseline,
        versions: &[(0, host_path_volumes)],
        overrides: &[],
    },
    Check {
        id: "hostPorts",
        level: Level::Baseline,
        versions: &[(0, host_ports)],
        overrides: &[],
    },
    Check {
        id: "hostProbesAndHostLifecycle",
        level: Level::Baseline,
        versions: &[(34, host_probes)],
        overrides: &[],
    },
    Check {
        id: "privileged",
        level: Level::Baseline,
        versions: &[(0, privileged)],
        overrides: &[],
    },
    Check {
        id: "procMount",
        level: Level::Baseline,
        versions: &[(0, proc_mount), (35, proc_mount_1_35)],
        overrides: &[],
    },
    Check {
        id: "seLinuxOptions",
        level: Level::Baseline,
        versions: &[(0, se_linux_1_0), (31, se_linux_1_31)],
        overrides: &[],
    },
    Check {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        versions: &[(0, seccomp_baseline_1_0), (19, seccomp_baseline_1_19)],
        overrides: &[],
    },
    Check {
        id: "sysctls",
        level: Level::Baseline,
        versions: &[
            (0, sysctls_1_0),
            (27, sysctls_1_27),
            (29, sysctls_1_29),
            (32, sysctls_1_32),
        ],
        overrides: &[],
    },
    Check {
        id: "windowsHostProcess",
        level: Level::Baseline,
        versions: &[(0, windows_host_process)],
        overrides: &[],
    },
    Check {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        versions: &[
            (8, allow_privilege_escalation_1_8),
            (25, allow_privilege_escalation_1_25),
        ],
        overrides: &[],
    },
    Check {
        id: "capabilities_restricted",
        level: Level::Restricted,
        versions: &[
            (22, capabilities_restricted_1_22),
            (25, capabilities_restricted_1_25),
        ],
        overrides: &["capabilities_baseline"],
    },
    Check {
        id: "procMount_restricted",
        level: Level::Restricted,
        versions: &[(35, proc_mount)],
        overrides: &["procMount"],
    },
    Check {
        id: "restrictedVolumes",
        level: Level::Restricted,
        versions: &[(0, restricted_volumes)],
        overrides: &["hostPathVolumes"],
    },
    Check {
        id: "runAsNonRoot",
        level: Level::Restricted,
        versions: &[(0, run_as_non_root_1_0), (35, run_as_non_root_1_35)],
        overrides: &[],
    },
    Check {
        id: "runAsUser",
        level: Level::Restricted,
        versions: &[(23, run_as_user_1_23), (35, run_as_user_1_35)],
        overrides: &[],
    },
    Check {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        versions: &[(19, seccomp_restricted_1_19), (25, seccomp_restricted_1_25)],
        overrides: &["seccompProfile_baseline"],
    },
];

/// The newest policy version: the server's own minor (upstream caps at its emulated version).
fn max_minor() -> u32 {
    crate::KUBERNETES_MINOR.parse().unwrap_or(0)
}

/// The implementation of a check at minor `v`, if the check exists there.
fn at(check: &Check, v: u32) -> Option<CheckFn> {
    check
        .versions
        .iter()
        .rev()
        .find(|(min, _)| *min <= v)
        .map(|(_, f)| *f)
}

/// Every failed check of `level` at its version, in upstream's order.
pub fn evaluate(lv: LevelVersion, meta: &Value, spec: &Value) -> Vec<(String, String)> {
    if lv.level == Level::Privileged {
        return Vec::new();
    }
    let v = lv.minor.unwrap_or(u32::MAX).min(max_minor());
    let overridden: Vec<&str> = if lv.level == Level::Restricted {
        CHECKS
            .iter()
            .filter(|c| c.level == Level::Restricted && at(c, v).is_some())
            .flat_map(|c| c.overrides.iter().copied())
            .collect()
    } else {
        Vec::new()
    };
    CHECKS
        .iter()
        .filter(|c| c.level <= lv.level && !overridden.contains(&c.id))
        .filter_map(|c| at(c, v))
        .filter_map(|f| f(meta, spec))
        .collect()
}

/// `reason (detail), reason, ...` (upstream's `ForbiddenDetail`).
pub fn forbidden_detail(failures: &[(String, String)]) -> String {
    failures
        .iter()
        .map(|(reason, detail)| match detail.is_empty() {
            true => reason.clone(),
            false => format!("{reason} ({detail})"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// The plugin

pub struct PodSecurity;

/// Upstream's `EvaluatePod` for a pod (`enforce`) or a workload's pod template: the request's
/// audit annotations (the namespace's invalid labels, the enforced policy, audit violations),
/// a warning unless the pod is rejected, and the enforce level's failures that reject it.
fn evaluate_pod(
    policy: Policy,
    causes: &[FieldCause],
    meta: &Value,
    spec: &Value,
    enforce: bool,
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    if !causes.is_empty() {
        crate::audit::annotate(
            POLICY_ERROR,
            format!("Failed to parse policy: {}", aggregate(causes)),
        );
    }
    let violation = |lv: LevelVersion, failed: &[(String, String)]| {
        format!(
            "would violate PodSecurity \"{lv}\": {}",
            forbidden_detail(failed)
        )
    };
    let mut enforced = Vec::new();
    if enforce {
        crate::audit::annotate(ENFORCE_POLICY, policy.enforce.to_string());
        enforced = evaluate(policy.enforce, meta, spec);
    }
    let audited = match enforce && policy.audit == policy.enforce {
        true => enforced.clone(),
        false => evaluate(policy.audit, meta, spec),
    };
    if !audited.is_empty() {
        crate::audit::annotate(AUDIT_VIOLATIONS, violation(policy.audit, &audited));
    }
    // No warning on a request that is refused anyway.
    if enforced.is_empty() {
        let failed = evaluate(policy.warn, meta, spec);
        if !failed.is_empty() {
            warnings.push(violation(policy.warn, &failed));
        }
    }
    enforced
}

/// Go's aggregate of field errors: one message, or `[a, b]` with duplicates dropped.
fn aggregate(causes: &[FieldCause]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for c in causes {
        let message = format!("{}: {}", c.field, c.message);
        if !seen.contains(&message) {
            seen.push(message);
        }
    }
    match seen.len() {
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// Pod subresources PodSecurity ignores (any other, such as ephemeralcontainers, is checked).
const IGNORED_POD_SUBRESOURCES: &[&str] = &[
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// Where a workload keeps its pod template's metadata and spec.
fn template_path(attrs: &Attributes<'_>) -> Option<&'static str> {
    match (attrs.resource.group, attrs.resource.plural) {
        ("", "podtemplates") => Some("/template"),
        ("", "replicationcontrollers")
        | ("apps", "replicasets" | "deployments" | "statefulsets" | "daemonsets")
        | ("batch", "jobs") => Some("/spec/template"),
        ("batch", "cronjobs") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// Upstream's `isSignificantPodUpdate`: only container changes (images, added ephemeral
/// containers) are evaluated again.
fn significant_update(pod: &Value, old: &Value) -> bool {
    let (spec, old_spec) = (&pod["spec"], &old["spec"]);
    for field in ["containers", "initContainers"] {
        let (a, b) = (
            spec.get(field).and_then(Value::as_array),
            old_spec.get(field).and_then(Value::as_array),
        );
        let (a, b) = (
            a.cloned().unwrap_or_default(),
            b.cloned().unwrap_or_default(),
        );
        if a.len() != b.len()
            || a.iter()
                .zip(&b)
                .any(|(x, y)| x.get("image") != y.get("image"))
        {
            return true;
        }
    }
    spec.get("ephemeralContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            let found = old_spec
                .get("ephemeralContainers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|o| o.get("name") == c.get("name"));
            match found {
                None => true,
                Some(o) => o.get("image").and_then(Value::as_str).unwrap_or("") != image,
            }
        })
}

impl PodSecurity {
    async fn namespace_policy(
        &self,
        attrs: &Attributes<'_>,
        cluster: &dyn Lookup,
    ) -> ApiResult<(Policy, Vec<FieldCause>)> {
        let ns = cluster
            .get(crate::registry::namespaces(), None, attrs.namespace)
            .await?
            .ok_or_else(|| {
                ApiError::internal(format!("failed to lookup namespace {:?}", attrs.namespace))
            })?;
        Ok(policy(
            ns.pointer("/metadata/labels").and_then(Value::as_object),
        ))
    }

    async fn pod(
        &self,
        attrs: &Attributes<'_>,
        pod: &Value,
        cluster: &dyn Lookup,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if attrs
            .subresource
            .is_some_and(|s| IGNORED_POD_SUBRESOURCES.contains(&s))
        {
            return Ok(());
        }
        let (policy, causes) = self.namespace_policy(attrs, cluster).await?;
        let privileged = |lv: LevelVersion| lv.level == Level::Privileged;
        if causes.is_empty()
            && privileged(policy.enforce)
            && privileged(policy.warn)
            && privileged(policy.audit)
        {
            let any_version = LevelVersion {
                level: Level::Privileged,
                minor: None,
            };
            crate::audit::annotate(ENFORCE_POLICY, any_version.to_string());
            return Ok(());
        }
        if attrs.operation == Operation::Update
            && let Some(old) = attrs.old_object
            && !significant_update(pod, old)
        {
            return Ok(());
        }
        let meta = pod.get("metadata").cloned().unwrap_or(Value::Null);
        let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        let enforced = evaluate_pod(policy, &causes, &meta, &spec, true, warnings);
        if !enforced.is_empty() {
            return Err(ApiError::forbidden(
                attrs.resource.group,
                attrs.resource.plural,
                attrs.name,
                &format!(
                    "violates PodSecurity \"{}\": {}",
                    policy.enforce,
                    forbidden_detail(&enforced)
                ),
                None,
            ));
        }
        Ok(())
    }

    async fn workload(
        &self,
        attrs: &Attributes<'_>,
        object: &Value,
        cluster: &dyn Lookup,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        let Some(path) = template_path(attrs) else {
            return Ok(());
        };
        if attrs.subresource.is_some() {
            return Ok(());
        }
        // A workload is never rejected: a missing namespace only loses the warning.
        let Ok((policy, causes)) = self.namespace_policy(attrs, cluster).await else {
            return Ok(());
        };
        if causes.is_empty()
            && policy.warn.level == Level::Privileged
            && policy.audit.level == Level::Privileged
        {
            return Ok(());
        }
        let Some(template) = object.pointer(path) else {
            return Ok(());
        };
        let meta = template.get("metadata").cloned().unwrap_or(Value::Null);
        let spec = template.get("spec").cloned().unwrap_or(Value::Null);
        evaluate_pod(policy, &causes, &meta, &spec, false, warnings);
        Ok(())
    }

    /// Namespace labels must be valid; a stricter enforce level warns about the pods already
    /// there that it would reject.
    async fn namespace(
        &self,
        attrs: &Attributes<'_>,
        ns: &Value,
        cluster: &dyn Lookup,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        if attrs.subresource.is_some() {
            return Ok(());
        }
        let labels = |o: &Value| {
            o.pointer("/metadata/labels")
                .and_then(Value::as_object)
                .cloned()
        };
        let (new, causes) = policy(labels(ns).as_ref());
        let invalid = || ApiError::invalid("", "Namespace", attrs.name, causes.clone());
        match (attrs.operation, attrs.old_object) {
            (Operation::Create, _) if !causes.is_empty() => {
                return Err(invalid());
            }
            (Operation::Update, Some(old)) => {
                let (old_policy, old_causes) = policy(labels(old).as_ref());
                let same = |a: &[FieldCause], b: &[FieldCause]| {
                    a.len() == b.len()
                        && a.iter()
                            .zip(b)
                            .all(|(x, y)| x.field == y.field && x.message == y.message)
                };
                if !causes.is_empty() && (old_causes.is_empty() || !same(&causes, &old_causes)) {
                    return Err(invalid());
                }
                if new.enforce == old_policy.enforce
                    || new.enforce.level == Level::Privileged
                    || (new.enforce.minor == old_policy.enforce.minor
                        && new.enforce.level <= old_policy.enforce.level)
                {
                    return Ok(());
                }
                let pods = cluster
                    .list(resource("", "pods"), Some(attrs.name), false)
                    .await?;
                warnings.extend(existing_pod_warnings(attrs.name, new.enforce, &pods));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Upstream's `EvaluatePodsInNamespace`: one warning per distinct set of failed checks, naming
/// the lexically first pod and how many others share it.
pub fn existing_pod_warnings(
    namespace: &str,
    enforce: LevelVersion,
    pods: &[Value],
) -> Vec<String> {
    let mut warnings = Vec::new();
    let checked = &pods[..pods.len().min(MAX_PODS_TO_CHECK)];
    if checked.len() < pods.len() {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {} of {} existing pods",
            checked.len(),
            pods.len()
        ));
    }
    // reason → (first pod name, count), in first-seen order.
    let mut seen: Vec<(String, String, usize)> = Vec::new();
    for pod in checked {
        let failed = evaluate(enforce, &pod["metadata"], &pod["spec"]);
        if failed.is_empty() {
            continue;
        }
        let reason = failed
            .iter()
            .map(|(r, _)| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let pod_name = meta_str(pod, "name").unwrap_or("").to_string();
        match seen.iter_mut().find(|(r, _, _)| *r == reason) {
            Some((_, first, count)) => {
                *count += 1;
                if pod_name < *first {
                    *first = pod_name;
                }
            }
            None => seen.push((reason, pod_name, 1)),
        }
    }
    if seen.is_empty() {
        return warnings;
    }
    warnings.push(format!("existing pods in namespace {namespace:?} violate the new PodSecurity enforce level \"{enforce}\""));
    let mut pod_warnings: Vec<String> = seen
        .into_iter()
        .map(|(reason, first, count)| match count {
            1 => format!("{first}: {reason}"),
            2 => format!("{first} (and 1 other pod): {reason}"),
            n => format!("{first} (and {} other pods): {reason}", n - 1),
        })
        .collect();
    pod_warnings.sort();
    warnings.extend(pod_warnings);
    warnings
}

impl Plugin for PodSecurity {
    fn validate<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: Option<&'a Value>,
        cluster: &'a dyn Lookup,
        warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            let Some(object) = object else { return Ok(()) };
            if !matches!(attrs.operation, Operation::Create | Operation::Update) {
                return Ok(());
            }
            if attrs.is("", "pods") {
                self.pod(attrs, object, cluster, warnings).await
            } else if attrs.is("", "namespaces") {
                self.namespace(attrs, object, cluster, warnings).await
            } else {
                self.workload(attrs, object, cluster, warnings).await
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{Fake, admin, create, run};
    use super::*;

    fn lv(level: Level) -> LevelVersion {
        LevelVersion { level, minor: None }
    }

    fn detail(level: Level, spec: Value) -> String {
        forbidden_detail(&evaluate(lv(level), &json!({}), &spec))
    }

    fn check(level: Level, spec: Value, want: &str) {
        assert_eq!(detail(level, spec.clone()), want, "{spec}");
    }

    #[test]
    fn restricted_defaults_fail_four_checks() {
        check(
            Level::Restricted,
            json!({"containers": [{"name": "x", "image": "nginx"}]}),
            "allowPrivilegeEscalation != false (container \"x\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"x\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"x\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"x\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
        );
        check(
            Level::Baseline,
            json!({"containers": [{"name": "x", "image": "nginx"}]}),
            "",
        );
    }

    #[test]
    fn a_restricted_pod_passes() {
        check(
            Level::Restricted,
            json!({
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "x", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
                "volumes": [{"name": "t", "projected": {"sources": []}}, {"name": "e", "emptyDir": {}}],
            }),
            "",
        );
    }

    #[test]
    fn baseline_check_table() {
        let c = |sc: Value| json!({"containers": [{"name": "c", "securityContext": sc}]});
        for (spec, want) in [
            (
                json!({"hostNetwork": true, "hostPID": true, "containers": []}),
                "host namespaces (hostNetwork=true, hostPID=true)",
            ),
            (
                c(json!({"privileged": true})),
                "privileged (container \"c\" must not set securityContext.privileged=true)",
            ),
            (
                c(json!({"capabilities": {"add": ["NET_ADMIN", "CHOWN", "SYS_TIME"]}})),
                "non-default capabilities (container \"c\" must not include \"NET_ADMIN\", \"SYS_TIME\" in securityContext.capabilities.add)",
            ),
            (
                json!({"volumes": [{"name": "h", "hostPath": {"path": "/"}}], "containers": []}),
                "hostPath volumes (volume \"h\")",
            ),
            (
                json!({"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"hostPort": 9090}]}]}),
                "hostPort (container \"a\" uses hostPorts 8080, 9090)",
            ),
            (
                c(json!({"procMount": "Unmasked"})),
                "procMount (container \"c\" must not set securityContext.procMount to \"Unmasked\")",
            ),
            (
                c(json!({"seLinuxOptions": {"type": "spc_t", "user": "u"}})),
                "seLinuxOptions (container \"c\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set)",
            ),
            (
                c(json!({"seccompProfile": {"type": "Unconfined"}})),
                "seccompProfile (container \"c\" must not set securityContext.seccompProfile.type to \"Unconfined\")",
            ),
            (
                json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax"}, {"name": "net.ipv4.tcp_syncookies"}]}, "containers": []}),
                "forbidden sysctls (kernel.msgmax)",
            ),
            (
                c(json!({"windowsOptions": {"hostProcess": true}})),
                "hostProcess (container \"c\" must not set securityContext.windowsOptions.hostProcess=true)",
            ),
            (
                c(json!({"appArmorProfile": {"type": "Unconfined"}})),
                "forbidden AppArmor profile (container \"c\" must not set AppArmor profile type to \"Unconfined\")",
            ),
        ] {
            check(Level::Baseline, spec, want);
        }
    }

    #[test]
    fn restricted_check_table() {
        let base = |c: Value| json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}, "containers": [c]});
        let good = json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
        for (spec, want) in [
            (
                base(
                    json!({"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}}),
                ),
                "unrestricted capabilities (container \"c\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)",
            ),
            (
                base(
                    json!({"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsUser": 0}}),
                ),
                "runAsUser=0 (container \"c\" must not set runAsUser=0)",
            ),
            (
                base(
                    json!({"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": false}}),
                ),
                "runAsNonRoot != true (container \"c\" must not set securityContext.runAsNonRoot=false)",
            ),
            (
                {
                    let mut s = base(json!({"name": "c", "securityContext": good.clone()}));
                    s["volumes"] =
                        json!([{"name": "h", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {}}]);
                    s
                },
                "restricted volume types (volumes \"h\", \"n\" use restricted volume types \"hostPath\", \"nfs\")",
            ),
        ] {
            check(Level::Restricted, spec, want);
        }
    }

    #[test]
    fn versions_select_check_revisions() {
        // Before v1.22 restricted did not require dropping capabilities; before v1.8 not
        // allowPrivilegeEscalation.
        let spec = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "c"}]});
        let at = |m| {
            forbidden_detail(&evaluate(
                LevelVersion {
                    level: Level::Restricted,
                    minor: Some(m),
                },
                &json!({}),
                &spec,
            ))
        };
        assert_eq!(
            at(21),
            "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false)"
        );
        assert!(at(22).contains("unrestricted capabilities"));
        // Newer than the server: the server's newest.
        assert_eq!(at(99), at(max_minor()));
    }

    #[test]
    fn policy_from_labels() {
        let labels = json!({"pod-security.kubernetes.io/enforce": "baseline"});
        let (p, causes) = policy(labels.as_object());
        assert!(causes.is_empty());
        assert_eq!(p.enforce.to_string(), "baseline:latest");
        assert_eq!(
            p.warn.to_string(),
            "baseline:latest",
            "warn follows a stricter enforce"
        );
        let labels = json!({"pod-security.kubernetes.io/enforce": "strict", "pod-security.kubernetes.io/warn-version": "1.2"});
        let (p, causes) = policy(labels.as_object());
        assert_eq!(
            p.enforce.level,
            Level::Restricted,
            "an invalid enforce level fails closed"
        );
        assert_eq!(
            causes[0].message,
            "Invalid value: \"strict\": must be one of privileged, baseline, restricted"
        );
        assert_eq!(
            causes[0].field,
            "metadata.labels[pod-security.kubernetes.io/enforce]"
        );
        assert_eq!(
            causes[1].message,
            "Invalid value: \"1.2\": must be \"latest\" or \"v1.x\""
        );
    }

    fn cluster(labels: Value) -> Fake {
        Fake::with(vec![(
            "namespaces",
            json!({"metadata": {"name": "ns", "labels": labels}}),
        )])
    }

    #[test]
    fn enforce_rejects_and_warn_warns() {
        let user = admin();
        let attrs = create("", "pods", "ns", "p", &user);
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "securityContext": {"privileged": true}}]}});
        let err = run(
            &PodSecurity,
            &attrs,
            &mut pod,
            &cluster(json!({"pod-security.kubernetes.io/enforce": "baseline"})),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"
        );
        let warnings = run(
            &PodSecurity,
            &attrs,
            &mut pod,
            &cluster(json!({"pod-security.kubernetes.io/warn": "baseline"})),
        )
        .unwrap();
        assert_eq!(
            warnings,
            [
                "would violate PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"
            ]
        );
        let warnings = run(&PodSecurity, &attrs, &mut pod, &cluster(json!({}))).unwrap();
        assert!(warnings.is_empty());
    }

    #[test]
    fn deployments_only_warn() {
        let user = admin();
        let attrs = create("apps", "deployments", "ns", "d", &user);
        let mut deployment = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"hostNetwork": true, "containers": []}}}});
        let warnings = run(
            &PodSecurity,
            &attrs,
            &mut deployment,
            &cluster(json!({"pod-security.kubernetes.io/enforce": "baseline"})),
        )
        .unwrap();
        assert_eq!(
            warnings,
            ["would violate PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"]
        );
    }

    /// Validate `object` as the chain would inside a request: its result (the warnings) and
    /// the audit annotations it made.
    fn audited(
        attrs: &Attributes<'_>,
        object: &Value,
        cluster: &Fake,
    ) -> (ApiResult<Vec<String>>, Vec<(String, String)>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(crate::audit::collecting(async {
            let mut warnings = Vec::new();
            PodSecurity
                .validate(attrs, Some(object), cluster, &mut warnings)
                .await
                .map(|()| warnings)
        }))
    }

    fn annotations(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn audit_mode_annotates_the_audit_event_and_allows() {
        let user = admin();
        let attrs = create("", "pods", "ns", "p", &user);
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "x", "image": "nginx"}]}});
        let restricted = detail(Level::Restricted, pod["spec"].clone());

        let (result, got) = audited(
            &attrs,
            &pod,
            &cluster(json!({"pod-security.kubernetes.io/audit": "restricted"})),
        );
        assert!(result.unwrap().is_empty(), "audit does not warn");
        assert_eq!(
            got,
            annotations(&[
                (ENFORCE_POLICY, "privileged:latest"),
                (
                    AUDIT_VIOLATIONS,
                    &format!("would violate PodSecurity \"restricted:latest\": {restricted}")
                ),
            ])
        );

        // A version label is honoured; a passing pod has nothing to report.
        let (_, got) = audited(
            &attrs,
            &pod,
            &cluster(
                json!({"pod-security.kubernetes.io/audit": "baseline", "pod-security.kubernetes.io/audit-version": "v1.30", "pod-security.kubernetes.io/enforce-version": "v1.29"}),
            ),
        );
        assert_eq!(got, annotations(&[(ENFORCE_POLICY, "privileged:v1.29")]));

        // A fully privileged namespace: the enforced policy, at the latest version whatever
        // the labels say.
        let (_, got) = audited(
            &attrs,
            &pod,
            &cluster(json!({"pod-security.kubernetes.io/enforce-version": "v1.29"})),
        );
        assert_eq!(got, annotations(&[(ENFORCE_POLICY, "privileged:latest")]));
    }

    #[test]
    fn a_rejected_pod_is_still_audited() {
        let user = admin();
        let attrs = create("", "pods", "ns", "p", &user);
        let pod = json!({"metadata": {"name": "p"}, "spec": {"hostNetwork": true, "containers": [{"name": "x", "image": "nginx"}]}});
        let (result, got) = audited(
            &attrs,
            &pod,
            &cluster(
                json!({"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/audit": "baseline"}),
            ),
        );
        assert!(result.is_err());
        assert_eq!(
            got,
            annotations(&[
                (ENFORCE_POLICY, "baseline:latest"),
                (
                    AUDIT_VIOLATIONS,
                    "would violate PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
                ),
            ])
        );
    }

    #[test]
    fn invalid_labels_and_workloads_are_audited() {
        let user = admin();
        let attrs = create("", "pods", "ns", "p", &user);
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "x", "image": "nginx"}]}});
        let (result, got) = audited(
            &attrs,
            &pod,
            &cluster(
                json!({"pod-security.kubernetes.io/audit": "bogus", "pod-security.kubernetes.io/warn-version": "v2"}),
            ),
        );
        result.unwrap();
        assert_eq!(
            got,
            annotations(&[
                (
                    POLICY_ERROR,
                    "Failed to parse policy: [metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: \"bogus\": must be one of privileged, baseline, restricted, metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: \"v2\": must be \"latest\" or \"v1.x\"]"
                ),
                (ENFORCE_POLICY, "privileged:latest"),
            ])
        );

        // A workload's template is audited, with no enforced policy to name.
        let attrs = create("apps", "deployments", "ns", "d", &user);
        let deployment = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"hostPID": true, "containers": []}}}});
        let (result, got) = audited(
            &attrs,
            &deployment,
            &cluster(json!({"pod-security.kubernetes.io/audit": "baseline"})),
        );
        assert!(result.unwrap().is_empty());
        assert_eq!(
            got,
            annotations(&[(
                AUDIT_VIOLATIONS,
                "would violate PodSecurity \"baseline:latest\": host namespaces (hostPID=true)"
            )])
        );
        let (_, got) = audited(&attrs, &deployment, &cluster(json!({})));
        assert!(got.is_empty());
    }

    #[test]
    fn stricter_namespace_warns_about_existing_pods() {
        let pods: Vec<Value> = ["b", "a", "c"]
            .iter()
            .map(|n| json!({"metadata": {"name": n}, "spec": {"hostPID": true, "containers": []}}))
            .collect();
        assert_eq!(
            existing_pod_warnings("ns", lv(Level::Baseline), &pods),
            [
                "existing pods in namespace \"ns\" violate the new PodSecurity enforce level \"baseline:latest\"",
                "a (and 2 other pods): host namespaces",
            ]
        );
    }
}
