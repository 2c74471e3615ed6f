//! Prometheus metrics of the API server: request counts and latencies kept in atomics as requests finish, object counts and process figures read when `/metrics` is scraped, all rendered in the text exposition format 0.0.4.
//!
//! Upstream's names, labels and buckets. Other parts of k1s contribute by exposing plain counters
//! that [`Metrics::render`] reads at scrape time (the store, which knows nothing of HTTP, is read
//! through count-only ranges today); nothing outside this module formats metrics.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use k1s_store::{RangeRequest, Store};
use parking_lot::{Mutex, RwLock};

use crate::registry::{self, Resource};
use crate::request::{Query, ResourceRequest, Verb};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upstream's `apiserver_request_duration_seconds` buckets (upper bounds, seconds).
pub const DURATION_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// The `component` label of everything the API server itself serves.
const COMPONENT: &str = "apiserver";

/// Subresources upstream reports with the CONNECT verb.
const CONNECT_SUBRESOURCES: &[&str] = &["log", "exec", "portforward", "attach", "proxy"];

/// One request as upstream's request metrics label it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    /// GET, LIST, WATCH, POST, PUT, PATCH, APPLY, DELETE, DELETECOLLECTION, CONNECT.
    pub verb: &'static str,
    /// `dryRun` as given (`All`), empty without it.
    pub dry_run: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    /// The subresource; for requests that name no resource (discovery, health), the path.
    pub subresource: Cow<'static, str>,
    /// `resource` (named, or a create), `namespace`, `cluster`; empty without a resource.
    pub scope: &'static str,
    pub component: &'static str,
}

impl RequestLabels {
    /// Labels of a resource request. `content_type` tells an apply patch from the others.
    pub fn resource(req: &ResourceRequest, query: &Query, content_type: &str) -> RequestLabels {
        let r = req.resource;
        let subresource = req
            .subresource
            .as_deref()
            .map(|sub| {
                r.subresources
                    .iter()
                    .find(|s| **s == sub)
                    .map_or_else(|| Cow::Owned(sub.to_string()), |s| Cow::Borrowed(*s))
            })
            .unwrap_or(Cow::Borrowed(""));
        let verb = match req.verb {
            _ if CONNECT_SUBRESOURCES.contains(&subresource.as_ref()) => "CONNECT",
            Verb::Get => "GET",
            Verb::List => "LIST",
            Verb::Watch => "WATCH",
            Verb::Create => "POST",
            Verb::Update => "PUT",
            Verb::Patch if content_type.starts_with("application/apply-patch") => "APPLY",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
            Verb::DeleteCollection => "DELETECOLLECTION",
        };
        let scope = if req.name.is_some() || req.verb == Verb::Create {
            "resource"
        } else if req.namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        };
        let dry_run = match query.get("dryRun") {
            None => "",
            Some("All") => "All",
            Some(_) => "invalid",
        };
        RequestLabels {
            verb,
            dry_run,
            group: r.group,
            version: r.version,
            resource: r.plural,
            subresource,
            scope,
            component: COMPONENT,
        }
    }

    /// Labels of a request for a path that names no resource (discovery, health checks).
    pub fn path(path: &str, component: &'static str) -> RequestLabels {
        RequestLabels {
            verb: "GET",
            dry_run: "",
            group: "",
            version: "",
            resource: "",
            subresource: Cow::Owned(path.to_string()),
            scope: "",
            component,
        }
    }
}

/// A histogram with upstream's request-duration buckets, and the response codes counted.
#[derive(Default)]
struct Series {
    /// Observations per bucket (not cumulative; summed when rendered).
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
    codes: Mutex<Vec<(u16, u64)>>,
}

impl Series {
    fn observe(&self, code: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        let mut codes = self.codes.lock();
        match codes.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => codes.push((code, 1)),
        }
    }
}

/// Whether a request counts as mutating for `apiserver_current_inflight_requests`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    ReadOnly,
    Mutating,
}

impl RequestKind {
    pub fn of(method: &http::Method) -> RequestKind {
        match *method {
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS => RequestKind::ReadOnly,
            _ => RequestKind::Mutating,
        }
    }
}

/// The server's metric registry: one per API server, shared by every request.
#[derive(Default)]
pub struct Metrics {
    requests: RwLock<HashMap<RequestLabels, Arc<Series>>>,
    /// Open long-running requests (watches), by their labels.
    long_running: RwLock<HashMap<RequestLabels, Arc<AtomicI64>>>,
    inflight_read_only: AtomicI64,
    inflight_mutating: AtomicI64,
    /// Audit events generated, and those the audit log could not take (channel full or a
    /// failed write).
    pub audit_events: AtomicU64,
    pub audit_errors: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Count one finished request and its latency.
    pub fn observe(&self, labels: &RequestLabels, code: u16, elapsed: Duration) {
        let existing = self.requests.read().get(labels).cloned();
        let series = match existing {
            Some(series) => series,
            None => self
                .requests
                .write()
                .entry(labels.clone())
                .or_default()
                .clone(),
        };
        series.observe(code, elapsed);
    }

    fn inflight_counter(&self, kind: RequestKind) -> &AtomicI64 {
        match kind {
            RequestKind::ReadOnly => &self.inflight_read_only,
            RequestKind::Mutating => &self.inflight_mutating,
        }
    }

    /// Count a request as in flight until the guard drops.
    pub fn inflight(self: &Arc<Self>, kind: RequestKind) -> Inflight {
        self.inflight_counter(kind).fetch_add(1, Ordering::Relaxed);
        Inflight {
            metrics: self.clone(),
            kind,
        }
    }

    /// Count a long-running request (a watch) as open until the guard drops; the request is
    /// then counted with code 200 and its whole duration, as upstream does.
    pub fn long_running(self: &Arc<Self>, labels: RequestLabels, started: Instant) -> LongRunning {
        let existing = self.long_running.read().get(&labels).cloned();
        let gauge = match existing {
            Some(gauge) => gauge,
            None => self
                .long_running
                .write()
                .entry(labels.clone())
                .or_default()
                .clone(),
        };
        gauge.fetch_add(1, Ordering::Relaxed);
        LongRunning {
            metrics: self.clone(),
            gauge,
            labels,
            started,
        }
    }

    /// Everything, in the text exposition format: request metrics, object counts read from
    /// `store`, and this process's figures from `/proc`.
    pub async fn render(&self, store: &Store) -> String {
        let mut out = Exposition::default();
        self.render_requests(&mut out);
        self.render_audit(&mut out);
        render_storage_objects(&mut out, store).await;
        render_process(&mut out, Path::new("/proc"));
        out.finish()
    }

    fn render_audit(&self, out: &mut Exposition) {
        out.family(
            "apiserver_audit_event_total",
            "Counter of audit events generated and sent to the audit backend.",
            "counter",
        );
        let events = self.audit_events.load(Ordering::Relaxed);
        out.sample("apiserver_audit_event_total", &[], events as f64);
        out.family(
            "apiserver_audit_error_total",
            "Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.",
            "counter",
        );
        let errors = self.audit_errors.load(Ordering::Relaxed);
        out.sample(
            "apiserver_audit_error_total",
            &[("plugin", "log")],
            errors as f64,
        );
    }

    fn render_requests(&self, out: &mut Exposition) {
        let mut series: Vec<(RequestLabels, Arc<Series>)> = self
            .requests
            .read()
            .iter()
            .map(|(l, s)| (l.clone(), s.clone()))
            .collect();
        series.sort_by(|a, b| label_order(&a.0).cmp(&label_order(&b.0)));

        out.family(
            "apiserver_request_total",
            "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
            "counter",
        );
        for (labels, s) in &series {
            let mut codes = s.codes.lock().clone();
            codes.sort_unstable();
            for (code, n) in codes {
                let code = code.to_string();
                let mut pairs = request_pairs(labels, true);
                pairs.push(("code", &code));
                out.sample("apiserver_request_total", &pairs, n as f64);
            }
        }

        out.family(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
            "histogram",
        );
        for (labels, s) in &series {
            let pairs = request_pairs(labels, true);
            out.histogram(
                "apiserver_request_duration_seconds",
                &pairs,
                &DURATION_BUCKETS,
                &s.buckets,
                s.count.load(Ordering::Relaxed),
                s.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            );
        }

        out.family(
            "apiserver_current_inflight_requests",
            "Maximal number of currently used inflight request limit of this apiserver per request kind in last second.",
            "gauge",
        );
        for (kind, counter) in [
            ("mutating", &self.inflight_mutating),
            ("readOnly", &self.inflight_read_only),
        ] {
            let value = counter.load(Ordering::Relaxed).max(0) as f64;
            out.sample(
                "apiserver_current_inflight_requests",
                &[("request_kind", kind)],
                value,
            );
        }

        out.family(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component. Not all requests are tracked this way.",
            "gauge",
        );
        let mut gauges: Vec<(RequestLabels, i64)> = self
            .long_running
            .read()
            .iter()
            .map(|(l, g)| (l.clone(), g.load(Ordering::Relaxed)))
            .collect();
        gauges.sort_by(|a, b| label_order(&a.0).cmp(&label_order(&b.0)));
        for (labels, value) in gauges {
            let pairs = request_pairs(&labels, false);
            out.sample(
                "apiserver_longrunning_requests",
                &pairs,
                value.max(0) as f64,
            );
        }
    }
}

fn label_order(l: &RequestLabels) -> impl Ord + '_ {
    (
        l.group,
        l.version,
        l.resource,
        l.subresource.as_ref(),
        l.verb,
        l.scope,
        l.dry_run,
    )
}

/// The label pairs of a request series, in upstream's order.
fn request_pairs(l: &RequestLabels, dry_run: bool) -> Vec<(&'static str, &str)> {
    let mut pairs = vec![("verb", l.verb)];
    if dry_run {
        pairs.push(("dry_run", l.dry_run));
    }
    pairs.extend([
        ("group", l.group),
        ("version", l.version),
        ("resource", l.resource),
        ("subresource", l.subresource.as_ref()),
        ("scope", l.scope),
        ("component", l.component),
    ]);
    pairs
}

/// A request counted in `apiserver_current_inflight_requests` while this lives.
pub struct Inflight {
    metrics: Arc<Metrics>,
    kind: RequestKind,
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.metrics
            .inflight_counter(self.kind)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// An open watch: counted in `apiserver_longrunning_requests` while this lives, and as a
/// finished request when it drops (the response body ended or the client went away).
pub struct LongRunning {
    metrics: Arc<Metrics>,
    gauge: Arc<AtomicI64>,
    labels: RequestLabels,
    started: Instant,
}

impl Drop for LongRunning {
    fn drop(&mut self) {
        self.gauge.fetch_sub(1, Ordering::Relaxed);
        self.metrics
            .observe(&self.labels, 200, self.started.elapsed());
    }
}

/// `apiserver_storage_objects{resource}`: a count-only range over each served resource's prefix.
async fn render_storage_objects(out: &mut Exposition, store: &Store) {
    out.family(
        "apiserver_storage_objects",
        "Number of stored objects at the time of last check split by kind. In case of a fetching error, the value will be -1.",
        "gauge",
    );
    let resources = registry::all();
    let mut counted: Vec<(String, f64)> = Vec::with_capacity(resources.len());
    for r in resources.iter() {
        let name = storage_resource_name(r);
        if counted.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let count = store
            .range(RangeRequest {
                prefix: Bytes::from(r.prefix()),
                start_after: None,
                revision: None,
                limit: 0,
                count_only: true,
            })
            .await
            .map_or(-1.0, |page| page.count as f64);
        counted.push((name, count));
    }
    counted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, count) in counted {
        out.sample("apiserver_storage_objects", &[("resource", &name)], count);
    }
}

/// `pods`, `deployments.apps`: upstream's `resource` label of storage metrics.
fn storage_resource_name(r: &Resource) -> String {
    if r.group.is_empty() {
        r.plural.to_string()
    } else {
        format!("{}.{}", r.plural, r.group)
    }
}

/// The kernel's fixed unit of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux port).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// This process's figures, as Prometheus client libraries name them, read under `proc_root`
/// (`/proc`; a directory laid out like it in tests). Figures that cannot be read are left out.
fn render_process(out: &mut Exposition, proc_root: &Path) {
    let read = |p: &str| std::fs::read_to_string(proc_root.join(p)).ok();
    let stat = read("self/stat").and_then(|s| parse_stat(&s));
    if let Some(stat) = &stat {
        out.family(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
        );
        let ticks = (stat.utime + stat.stime) as f64;
        out.sample(
            "process_cpu_seconds_total",
            &[],
            ticks / CLOCK_TICKS_PER_SECOND,
        );
    }
    let fds = std::fs::read_dir(proc_root.join("self/fd")).ok();
    if let Some(fds) = fds {
        out.family(
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
        );
        out.sample("process_open_fds", &[], fds.count() as f64);
    }
    if let Some(max) = read("self/limits").and_then(|l| parse_max_open_files(&l)) {
        out.family(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            "gauge",
        );
        out.sample("process_max_fds", &[], max);
    }
    if let Some(status) = read("self/status") {
        for (field, name, help) in [
            (
                "VmRSS",
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            (
                "VmSize",
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
        ] {
            if let Some(bytes) = parse_status_kib(&status, field) {
                out.family(name, help, "gauge");
                out.sample(name, &[], bytes as f64);
            }
        }
    }
    let boot = read("stat").and_then(|s| parse_boot_time(&s));
    if let (Some(stat), Some(boot)) = (&stat, boot) {
        out.family(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
        );
        let start = boot as f64 + stat.start_ticks as f64 / CLOCK_TICKS_PER_SECOND;
        out.sample("process_start_time_seconds", &[], start);
    }
}

/// The fields of `/proc/<pid>/stat` used here.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    utime: u64,
    stime: u64,
    /// Clock ticks after boot when the process started.
    start_ticks: u64,
}

/// Parse `/proc/<pid>/stat`; the command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0, so field N is index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        start_ticks: field(22)?,
    })
}

/// `btime` from `/proc/stat`: boot time, seconds since the epoch.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime"))
        .and_then(|v| v.trim().parse().ok())
}

/// A `kB` field of `/proc/<pid>/status`, in bytes.
fn parse_status_kib(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(field))?;
    let value = line.split(':').nth(1)?.split_whitespace().next()?;
    value.parse::<u64>().ok().map(|kib| kib * 1024)
}

/// The soft limit of "Max open files" in `/proc/<pid>/limits`.
fn parse_max_open_files(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(f64::INFINITY),
        n => n.parse().ok(),
    }
}

/// A text-format document being written: families (`# HELP`, `# TYPE`) and their samples.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, help: &str, type_: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {type_}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(key);
                self.text.push_str("=\"");
                escape_label_value(&mut self.text, value);
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        write_float(&mut self.text, value);
        self.text.push('\n');
    }

    /// `_bucket` samples (cumulative, `le` last among the labels, ending with `+Inf`), `_sum`
    /// and `_count`.
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        buckets: &[AtomicU64],
        count: u64,
        sum: f64,
    ) {
        let bucket_name = format!("{name}_bucket");
        let mut cumulative = 0u64;
        let with_le = |le: &str, out: &mut Self, value: f64| {
            let mut pairs: Vec<(&str, &str)> = labels.to_vec();
            pairs.push(("le", le));
            out.sample(&bucket_name, &pairs, value);
        };
        for (bound, n) in bounds.iter().zip(buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let mut le = String::new();
            write_float(&mut le, *bound);
            with_le(&le, self, cumulative as f64);
        }
        // Observations above the last bound are only in the count.
        with_le("+Inf", self, count as f64);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, count as f64);
    }

    fn finish(self) -> String {
        self.text
    }
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Numbers as Prometheus writes them: shortest round-trip form, `+Inf`, `-Inf`, `NaN`.
fn write_float(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configmaps() -> &'static Resource {
        registry::find("", "v1", "configmaps").unwrap()
    }

    fn request(verb: Verb, namespace: Option<&str>, name: Option<&str>) -> ResourceRequest {
        ResourceRequest {
            resource: configmaps(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: None,
            verb,
        }
    }

    #[test]
    fn verbs_and_scopes_as_upstream_labels_them() {
        let q = Query::default();
        let label = |verb, ns, name, ct| {
            let l = RequestLabels::resource(&request(verb, ns, name), &q, ct);
            format!("{} {}", l.verb, l.scope)
        };
        let json = "application/json";
        assert_eq!(label(Verb::Get, Some("a"), Some("x"), json), "GET resource");
        assert_eq!(label(Verb::List, Some("a"), None, json), "LIST namespace");
        assert_eq!(label(Verb::List, None, None, json), "LIST cluster");
        assert_eq!(label(Verb::Watch, Some("a"), None, json), "WATCH namespace");
        assert_eq!(label(Verb::Create, Some("a"), None, json), "POST resource");
        assert_eq!(
            label(Verb::Update, Some("a"), Some("x"), json),
            "PUT resource"
        );
        assert_eq!(
            label(
                Verb::Patch,
                Some("a"),
                Some("x"),
                "application/strategic-merge-patch+json"
            ),
            "PATCH resource"
        );
        assert_eq!(
            label(
                Verb::Patch,
                Some("a"),
                Some("x"),
                "application/apply-patch+yaml"
            ),
            "APPLY resource"
        );
        assert_eq!(
            label(Verb::DeleteCollection, Some("a"), None, json),
            "DELETECOLLECTION namespace"
        );
        let dry = Query::parse(Some("dryRun=All"));
        let l = RequestLabels::resource(&request(Verb::Create, Some("a"), None), &dry, json);
        assert_eq!(l.dry_run, "All");
    }

    #[test]
    fn exposition_of_requests_and_gauges() {
        let metrics = Arc::new(Metrics::new());
        let q = Query::default();
        let get = RequestLabels::resource(
            &request(Verb::Get, Some("default"), Some("x")),
            &q,
            "application/json",
        );
        metrics.observe(&get, 200, Duration::from_millis(3));
        metrics.observe(&get, 404, Duration::from_millis(30));
        metrics.observe(&get, 200, Duration::from_secs(100));
        let inflight = metrics.inflight(RequestKind::Mutating);
        let watch =
            RequestLabels::resource(&request(Verb::Watch, None, None), &q, "application/json");
        let open = metrics.long_running(watch.clone(), Instant::now());
        let mut out = Exposition::default();
        metrics.render_requests(&mut out);
        let text = out.finish();
        let lines: Vec<&str> = text.lines().collect();
        let has = |line: &str| assert!(lines.contains(&line), "{line} missing from\n{text}");
        has("# TYPE apiserver_request_total counter");
        has(
            r#"apiserver_request_total{verb="GET",dry_run="",group="",version="v1",resource="configmaps",subresource="",scope="resource",component="apiserver",code="200"} 2"#,
        );
        has(
            r#"apiserver_request_total{verb="GET",dry_run="",group="",version="v1",resource="configmaps",subresource="",scope="resource",component="apiserver",code="404"} 1"#,
        );
        has("# TYPE apiserver_request_duration_seconds histogram");
        let prefix = r#"apiserver_request_duration_seconds_bucket{verb="GET",dry_run="",group="",version="v1",resource="configmaps",subresource="",scope="resource",component="apiserver","#;
        has(&format!(r#"{prefix}le="0.005"}} 1"#));
        has(&format!(r#"{prefix}le="0.025"}} 1"#));
        has(&format!(r#"{prefix}le="0.05"}} 2"#));
        has(&format!(r#"{prefix}le="60"}} 2"#));
        has(&format!(r#"{prefix}le="+Inf"}} 3"#));
        has(
            r#"apiserver_request_duration_seconds_count{verb="GET",dry_run="",group="",version="v1",resource="configmaps",subresource="",scope="resource",component="apiserver"} 3"#,
        );
        assert!(text.contains(r#"apiserver_request_duration_seconds_sum{verb="GET",dry_run="",group="",version="v1",resource="configmaps",subresource="",scope="resource",component="apiserver"} 100.033"#), "{text}");
        has(r#"apiserver_current_inflight_requests{request_kind="mutating"} 1"#);
        has(r#"apiserver_current_inflight_requests{request_kind="readOnly"} 0"#);
        has(
            r#"apiserver_longrunning_requests{verb="WATCH",group="",version="v1",resource="configmaps",subresource="",scope="cluster",component="apiserver"} 1"#,
        );

        // Ending the watch closes the gauge and counts the request.
        drop(open);
        drop(inflight);
        let mut out = Exposition::default();
        metrics.render_requests(&mut out);
        let text = out.finish();
        assert!(text.contains(r#"apiserver_longrunning_requests{verb="WATCH",group="",version="v1",resource="configmaps",subresource="",scope="cluster",component="apiserver"} 0"#));
        assert!(text.contains(r#"apiserver_request_total{verb="WATCH",dry_run="",group="",version="v1",resource="configmaps",subresource="",scope="cluster",component="apiserver",code="200"} 1"#));
        assert!(text.contains(r#"apiserver_current_inflight_requests{request_kind="mutating"} 0"#));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut out = Exposition::default();
        out.family("x", "a \\ b\nc", "gauge");
        out.sample("x", &[("path", "a\"b\\c\nd")], 1.5);
        out.sample("y", &[], f64::INFINITY);
        assert_eq!(
            out.finish(),
            "# HELP x a \\\\ b\\nc\n# TYPE x gauge\nx{path=\"a\\\"b\\\\c\\nd\"} 1.5\ny +Inf\n"
        );
    }

    #[test]
    fn process_figures_from_proc() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("self/fd")).unwrap();
        for fd in ["0", "1", "2"] {
            std::fs::write(root.join("self/fd").join(fd), "").unwrap();
        }
        // A command name with spaces and parentheses; utime 250, stime 50, starttime 1000.
        std::fs::write(
            root.join("self/stat"),
            "42 (k1s (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1000 123456 789 18446744073709551615\n",
        )
        .unwrap();
        std::fs::write(
            root.join("stat"),
            "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n",
        )
        .unwrap();
        std::fs::write(
            root.join("self/status"),
            "Name:\tk1s\nVmSize:\t  2048 kB\nVmRSS:\t    1024 kB\n",
        )
        .unwrap();
        std::fs::write(
            root.join("self/limits"),
            "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n",
        )
        .unwrap();
        let mut out = Exposition::default();
        render_process(&mut out, root);
        let text = out.finish();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "process_cpu_seconds_total 3",
                "process_open_fds 3",
                "process_max_fds 1024",
                "process_resident_memory_bytes 1048576",
                "process_virtual_memory_bytes 2097152",
                "process_start_time_seconds 1700000010",
            ]
        );
    }

    #[test]
    fn process_figures_of_this_process() {
        let mut out = Exposition::default();
        render_process(&mut out, Path::new("/proc"));
        let text = out.finish();
        for name in [
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name} in {text}");
        }
    }
}
