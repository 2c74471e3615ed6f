//! Cluster PKI: the k1s CA, the apiserver serving and admin client certificates on disk, the rustls server configuration, and client-certificate authentication.
//!
//! Layout and behaviour follow k3s: one self-signed cluster CA (`k1s-ca`, 10 years) that is
//! created once and never replaced, and leaf certificates (1 year) that are reissued by that CA
//! whenever they are missing, damaged, close to expiry or (for the serving certificate) lack a
//! subject alternative name the host now needs. The TLS layer asks for client certificates but
//! never rejects a connection because of one; authentication happens per request through
//! [`ClientVerifier`], so the HTTP layer can answer 401 like the upstream apiserver does.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName as RcgenName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use time::{Duration, OffsetDateTime};

/// Common name of the cluster CA.
pub const CA_COMMON_NAME: &str = "k1s-ca";
/// Common name of the apiserver serving certificate.
pub const SERVER_COMMON_NAME: &str = "kube-apiserver";
/// User name of the admin client certificate.
pub const ADMIN_USER: &str = "system:admin";
/// Group of the admin client certificate; RBAC's superuser group.
pub const ADMIN_GROUP: &str = "system:masters";
/// First address of the default service CIDR (10.43.0.0/16), the `kubernetes` service's IP.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 1);

const CA_VALIDITY: Duration = Duration::days(3650);
const LEAF_VALIDITY: Duration = Duration::days(365);
/// Leaves expiring sooner than this are reissued at start-up (k3s uses the same 90 days).
const RENEW_BEFORE: Duration = Duration::days(90);
/// Back-date `notBefore` so clients with a slightly slow clock accept fresh certificates.
const CLOCK_SKEW: Duration = Duration::minutes(5);

const CA_CERT_FILE: &str = "ca.crt";
const CA_KEY_FILE: &str = "ca.key";
const SERVER_CERT_FILE: &str = "server.crt";
const SERVER_KEY_FILE: &str = "server.key";
const ADMIN_CERT_FILE: &str = "admin.crt";
const ADMIN_KEY_FILE: &str = "admin.key";

/// Everything that can go wrong loading, creating or using the cluster certificates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    /// The CA exists but cannot be used; it is never replaced automatically because every
    /// issued certificate and kubeconfig trusts it.
    #[error("cluster ca {path} is unusable: {reason}")]
    DamagedCa { path: PathBuf, reason: String },
    #[error("generating {what}: {source}")]
    Generate { what: String, source: rcgen::Error },
    /// rcgen keeps one value per subject attribute type, so a certificate can carry one
    /// organization (group) at most.
    #[error("client certificate for {user}: at most one group is supported, got {count}")]
    TooManyGroups { user: String, count: usize },
    /// A PEM held by [`ClusterTls`] does not parse (only possible if it was built by hand).
    #[error("invalid {what}: {reason}")]
    InvalidPem { what: &'static str, reason: String },
    #[error("building tls server configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names and addresses the serving certificate must be valid for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanConfig {
    pub hostnames: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl SanConfig {
    /// The SANs k3s puts on its serving certificate: the in-cluster service names, the host
    /// name, loopback, the `kubernetes` service IP, the host's own addresses and `extra_ips`.
    pub fn for_host(extra_ips: &[IpAddr]) -> SanConfig {
        let mut sans = SanConfig::default();
        for name in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            sans.add_hostname(name);
        }
        if let Some(name) = host_name() {
            sans.add_hostname(&name);
        }
        let fixed = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V4(KUBERNETES_SERVICE_IP),
        ];
        let host = host_ips();
        for ip in fixed.iter().chain(&host).chain(extra_ips) {
            sans.add_ip(*ip);
        }
        sans
    }

    fn add_hostname(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        if !self.hostnames.contains(&name) {
            self.hostnames.push(name);
        }
    }

    fn add_ip(&mut self, ip: IpAddr) {
        if !self.ips.contains(&ip) {
            self.ips.push(ip);
        }
    }

    /// Host names that are valid DNS names. Anything else could neither be matched by a TLS
    /// client nor be checked for, and would make the serving certificate look stale forever.
    fn dns_names(&self) -> impl Iterator<Item = &str> {
        self.hostnames.iter().map(String::as_str).filter(|name| {
            let valid = ServerName::try_from(*name)
                .is_ok_and(|parsed| matches!(parsed, ServerName::DnsName(_)));
            if !valid {
                tracing::warn!(name, "ignoring host name that is not a valid dns name");
            }
            valid
        })
    }

    fn to_rcgen(&self) -> std::result::Result<Vec<SanType>, rcgen::Error> {
        let mut sans = Vec::new();
        for name in self.dns_names() {
            sans.push(SanType::DnsName(name.try_into()?));
        }
        sans.extend(self.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        Ok(sans)
    }
}

/// The kernel's host name, as `hostname` prints it.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .map(|text| text.trim().to_string())
        .find(|name| !name.is_empty() && name.parse::<IpAddr>().is_err())
}

/// The host's own non-loopback addresses, read from procfs so no netlink dependency is needed.
pub(crate) fn host_ips() -> Vec<IpAddr> {
    let v4 = fs::read_to_string("/proc/net/fib_trie")
        .map(|text| parse_fib_trie(&text))
        .unwrap_or_default();
    let v6 = fs::read_to_string("/proc/net/if_inet6")
        .map(|text| parse_if_inet6(&text))
        .unwrap_or_default();
    v4.into_iter()
        .map(IpAddr::V4)
        .chain(v6.into_iter().map(IpAddr::V6))
        .collect()
}

/// Local IPv4 addresses from `/proc/net/fib_trie`: a `|-- a.b.c.d` leaf followed by a
/// `/32 host LOCAL` line is an address assigned to this host.
fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    let mut leaf: Option<Ipv4Addr> = None;
    for line in text.lines().map(str::trim) {
        if let Some(addr) = line.strip_prefix("|-- ") {
            leaf = addr.parse().ok();
        } else if line.starts_with("/32 host LOCAL")
            && let Some(addr) = leaf
                .take()
                .filter(|a| !a.is_loopback() && !found.contains(a))
        {
            found.push(addr);
        }
    }
    found
}

/// Global-scope, non-temporary IPv6 addresses from `/proc/net/if_inet6`
/// (`address ifindex prefixlen scope flags name`, all hex).
fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    const SCOPE_GLOBAL: u8 = 0x00;
    const IFA_F_TEMPORARY: u8 = 0x01;
    let mut found = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [addr, _, _, scope, flags, ..] = fields.as_slice() else {
            continue;
        };
        let (Ok(bits), Ok(scope), Ok(flags)) = (
            u128::from_str_radix(addr, 16),
            u8::from_str_radix(scope, 16),
            u8::from_str_radix(flags, 16),
        ) else {
            continue;
        };
        let addr = Ipv6Addr::from(bits);
        // Temporary (privacy) addresses rotate; putting them in the certificate would only
        // force a new serving certificate on every restart.
        if scope == SCOPE_GLOBAL
            && flags & IFA_F_TEMPORARY == 0
            && !addr.is_loopback()
            && !found.contains(&addr)
        {
            found.push(addr);
        }
    }
    found
}

/// The cluster's certificates and keys, PEM encoded (keys are PKCS#8).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterTls {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
}

/// Keys stay out of logs.
impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTls")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("server_cert_pem", &self.server_cert_pem)
            .field("admin_cert_pem", &self.admin_cert_pem)
            .finish_non_exhaustive()
    }
}

/// The loaded CA: what is needed both to issue leaves and to check existing ones.
struct Ca {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    anchor: TrustAnchor<'static>,
}

impl Ca {
    fn generate(what: &Path) -> Result<Ca> {
        let generate = |source| Error::Generate {
            what: what.display().to_string(),
            source,
        };
        let key = new_key().map_err(generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(CA_COMMON_NAME, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(generate)?;
        Ca::from_pems(what, cert.pem(), key.serialize_pem())
    }

    /// Parses a CA from its PEMs; `path` (the certificate) is named in every error.
    fn from_pems(path: &Path, cert_pem: String, key_pem: String) -> Result<Ca> {
        let damaged = |reason: String| Error::DamagedCa {
            path: path.to_path_buf(),
            reason,
        };
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| damaged(format!("no pem certificate: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| damaged(format!("bad certificate: {e}")))?;
        if !parsed.is_ca() {
            return Err(damaged("not a ca certificate".into()));
        }
        let not_after = parsed.validity().not_after;
        let remaining = not_after.timestamp() - OffsetDateTime::now_utc().unix_timestamp();
        if remaining <= 0 {
            return Err(damaged(format!("expired at {not_after}")));
        }
        if remaining < RENEW_BEFORE.whole_seconds() {
            tracing::warn!(path = %path.display(), %not_after, "cluster ca expires soon; it is not renewed automatically");
        }
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| damaged(format!("bad private key {CA_KEY_FILE}: {e}")))?;
        if key.public_key_raw() != parsed.public_key().subject_public_key.data.as_ref() {
            return Err(damaged(format!(
                "{CA_KEY_FILE} does not match the certificate"
            )));
        }
        let anchor = webpki::anchor_from_trusted_cert(&der)
            .map_err(|e| damaged(format!("not usable as trust anchor: {e}")))?
            .to_owned();
        let issuer = Issuer::from_ca_cert_der(&der, key)
            .map_err(|e| damaged(format!("not usable as issuer: {e}")))?;
        Ok(Ca {
            cert_pem,
            key_pem,
            issuer,
            anchor,
        })
    }
}

/// What a leaf certificate is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Usage {
    Server,
    Client,
}

struct LeafSpec<'a> {
    common_name: &'a str,
    group: Option<&'a str>,
    usage: Usage,
    sans: &'a SanConfig,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
}

fn new_key() -> std::result::Result<KeyPair, rcgen::Error> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
}

/// Random 127-bit serial: unique per issuance even when a key were reused (RFC 5280 wants
/// positive serials of at most 20 bytes).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn subject(cn: &str, organization: Option<&str>) -> RcgenName {
    let mut name = RcgenName::new();
    if let Some(org) = organization {
        name.push(DnType::OrganizationName, org);
    }
    name.push(DnType::CommonName, cn);
    name
}

/// Issues a leaf signed by `ca`, valid from now until `not_after`.
fn issue_leaf(
    ca: &Ca,
    spec: &LeafSpec<'_>,
    not_after: OffsetDateTime,
) -> std::result::Result<Leaf, rcgen::Error> {
    let key = new_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(spec.common_name, spec.group);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![match spec.usage {
        Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    if spec.usage == Usage::Server {
        params.subject_alt_names = spec.sans.to_rcgen()?;
    }
    params.not_before = OffsetDateTime::now_utc() - CLOCK_SKEW;
    params.not_after = not_after;
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok(Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Why an existing leaf cannot be kept, or `None` if it is fine.
fn leaf_problem(ca: &Ca, spec: &LeafSpec<'_>, cert_pem: &str, key_pem: &str) -> Option<String> {
    let der = match CertificateDer::from_pem_slice(cert_pem.as_bytes()) {
        Ok(der) => der,
        Err(e) => return Some(format!("no pem certificate: {e}")),
    };
    let cert = match webpki::EndEntityCert::try_from(&der) {
        Ok(cert) => cert,
        Err(e) => return Some(format!("bad certificate: {e}")),
    };
    let eku = match spec.usage {
        Usage::Server => webpki::KeyUsage::server_auth(),
        Usage::Client => webpki::KeyUsage::client_auth(),
    };
    let algs = ring_provider().signature_verification_algorithms.all;
    let anchors = [ca.anchor.clone()];
    if let Err(e) = cert.verify_for_usage(algs, &anchors, &[], UnixTime::now(), eku, None, None) {
        return Some(format!("not valid for the cluster ca: {e}"));
    }
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&der) else {
        return Some("bad certificate".into());
    };
    let not_after = parsed.validity().not_after;
    let renew_at = OffsetDateTime::now_utc() + RENEW_BEFORE;
    if not_after.timestamp() < renew_at.unix_timestamp() {
        return Some(format!("expires at {not_after}"));
    }
    let key = match KeyPair::from_pem(key_pem) {
        Ok(key) => key,
        Err(e) => return Some(format!("bad private key: {e}")),
    };
    if key.public_key_raw() != parsed.public_key().subject_public_key.data.as_ref() {
        return Some("private key does not match the certificate".into());
    }
    if spec.usage == Usage::Server {
        return missing_san(&cert, spec.sans);
    }
    None
}

/// The first required name the serving certificate is not valid for, checked the way a TLS
/// client would check it.
fn missing_san(cert: &webpki::EndEntityCert<'_>, sans: &SanConfig) -> Option<String> {
    for name in sans.dns_names() {
        let valid = ServerName::try_from(name)
            .is_ok_and(|server| cert.verify_is_valid_for_subject_name(&server).is_ok());
        if !valid {
            return Some(format!("missing subject alternative name {name}"));
        }
    }
    for ip in &sans.ips {
        let server = ServerName::IpAddress((*ip).into());
        if cert.verify_is_valid_for_subject_name(&server).is_err() {
            return Some(format!("missing subject alternative name {ip}"));
        }
    }
    None
}

/// Loads the certificates in `dir`, creating or reissuing whatever is missing or stale.
///
/// The CA is created only when `ca.crt` does not exist; an existing but unusable CA is an
/// error, because replacing it would silently invalidate every kubeconfig and node
/// certificate handed out before. Leaves are reissued by the existing CA when they are missing,
/// unparsable, not signed by the CA, expiring within 90 days, paired with the wrong key or
/// (serving certificate) not valid for every name in `sans`.
pub fn load_or_create(dir: &Path, sans: &SanConfig) -> Result<ClusterTls> {
    create_private_dir(dir)?;
    let ca = load_or_create_ca(dir)?;
    let server = load_or_issue_leaf(
        dir,
        &ca,
        &LeafSpec {
            common_name: SERVER_COMMON_NAME,
            group: None,
            usage: Usage::Server,
            sans,
        },
        (SERVER_CERT_FILE, SERVER_KEY_FILE),
    )?;
    let admin = load_or_issue_leaf(
        dir,
        &ca,
        &LeafSpec {
            common_name: ADMIN_USER,
            group: Some(ADMIN_GROUP),
            usage: Usage::Client,
            sans,
        },
        (ADMIN_CERT_FILE, ADMIN_KEY_FILE),
    )?;
    Ok(ClusterTls {
        ca_cert_pem: ca.cert_pem,
        ca_key_pem: ca.key_pem,
        server_cert_pem: server.cert_pem,
        server_key_pem: server.key_pem,
        admin_cert_pem: admin.cert_pem,
        admin_key_pem: admin.key_pem,
    })
}

/// `ca.crt` is what marks the CA as existing: it is written after `ca.key`, so a crash in
/// between leaves an orphan key that is simply replaced on the next start.
fn load_or_create_ca(dir: &Path) -> Result<Ca> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let Some(cert) = read_private(&cert_path)? else {
        tracing::info!(path = %cert_path.display(), "creating cluster ca");
        let ca = Ca::generate(&cert_path)?;
        write_private(&key_path, ca.key_pem.as_bytes())?;
        write_private(&cert_path, ca.cert_pem.as_bytes())?;
        return Ok(ca);
    };
    let Some(key) = read_private(&key_path)? else {
        return Err(Error::DamagedCa {
            path: key_path,
            reason: format!("missing while {CA_CERT_FILE} exists"),
        });
    };
    let text = |bytes: Vec<u8>, path: &Path| {
        String::from_utf8(bytes).map_err(|_| Error::DamagedCa {
            path: path.to_path_buf(),
            reason: "not utf-8 pem".into(),
        })
    };
    let cert = text(cert, &cert_path)?;
    let key = text(key, &key_path)?;
    Ca::from_pems(&cert_path, cert, key)
}

fn load_or_issue_leaf(
    dir: &Path,
    ca: &Ca,
    spec: &LeafSpec<'_>,
    (cert_file, key_file): (&str, &str),
) -> Result<Leaf> {
    let cert_path = dir.join(cert_file);
    let key_path = dir.join(key_file);
    let cert = read_private(&cert_path)?.map(String::from_utf8);
    let key = read_private(&key_path)?.map(String::from_utf8);
    let reason = match (cert, key) {
        (Some(Ok(cert_pem)), Some(Ok(key_pem))) => {
            match leaf_problem(ca, spec, &cert_pem, &key_pem) {
                None => return Ok(Leaf { cert_pem, key_pem }),
                Some(problem) => problem,
            }
        }
        (None, _) | (_, None) => "missing".to_string(),
        _ => "not utf-8 pem".to_string(),
    };
    tracing::info!(path = %cert_path.display(), %reason, "issuing certificate");
    let leaf =
        issue_leaf(ca, spec, OffsetDateTime::now_utc() + LEAF_VALIDITY).map_err(|source| {
            Error::Generate {
                what: cert_path.display().to_string(),
                source,
            }
        })?;
    // Key first: a crash before the certificate lands leaves a mismatched pair, which the
    // next start detects and reissues.
    write_private(&key_path, leaf.key_pem.as_bytes())?;
    write_private(&cert_path, leaf.cert_pem.as_bytes())?;
    Ok(leaf)
}

/// Issues a client certificate (PEM certificate, PEM PKCS#8 key) for user `cn` in `groups`
/// (at most one), signed by the cluster CA and valid for one year: node and component
/// identities, and tests.
pub fn issue_client_cert(tls: &ClusterTls, cn: &str, groups: &[&str]) -> Result<(String, String)> {
    let group = match groups {
        [] => None,
        [group] => Some(*group),
        _ => {
            return Err(Error::TooManyGroups {
                user: cn.to_string(),
                count: groups.len(),
            });
        }
    };
    let ca = Ca::from_pems(
        Path::new(CA_CERT_FILE),
        tls.ca_cert_pem.clone(),
        tls.ca_key_pem.clone(),
    )?;
    let sans = SanConfig::default();
    let spec = LeafSpec {
        common_name: cn,
        group,
        usage: Usage::Client,
        sans: &sans,
    };
    let leaf =
        issue_leaf(&ca, &spec, OffsetDateTime::now_utc() + LEAF_VALIDITY).map_err(|source| {
            Error::Generate {
                what: format!("client certificate for {cn}"),
                source,
            }
        })?;
    Ok((leaf.cert_pem, leaf.key_pem))
}

// ---------------------------------------------------------------------------------------------
// Files

/// Creates `dir` (and parents) as 0700 and tightens it if it already existed: it holds the CA
/// key, which can mint cluster-admin credentials.
fn create_private_dir(dir: &Path) -> Result<()> {
    let failed = |source| Error::CreateDir {
        path: dir.to_path_buf(),
        source,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(failed)
}

/// Reads a file that should be private, fixing its mode if someone loosened it.
fn read_private(path: &Path) -> Result<Option<Vec<u8>>> {
    let failed = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e)),
    };
    let mode = fs::metadata(path).map_err(failed)?.permissions().mode() & 0o777;
    if mode != 0o600 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "restricting mode to 0600");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(failed)?;
    }
    Ok(Some(bytes))
}

fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic(path, contents).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces `path` with `contents` (mode 0600) so that a crash leaves either the old or the new
/// file, never a torn one: write a temporary sibling, fsync it, rename it over `path`, then fsync
/// the directory so the rename itself is durable.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:08x}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = write_synced(&tmp, contents).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        // Best effort: the temporary file is useless after a failure.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    File::open(dir)?.sync_all()
}

fn write_synced(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    // The umask can only remove bits, but make the mode explicit anyway.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}

// ---------------------------------------------------------------------------------------------
// TLS

/// The ring provider, chosen explicitly so nothing depends on a process-wide default provider.
pub(crate) fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn parse_cert(pem: &str, what: &'static str) -> Result<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| Error::InvalidPem {
        what,
        reason: e.to_string(),
    })
}

fn ca_anchor(tls: &ClusterTls) -> Result<TrustAnchor<'static>> {
    let der = parse_cert(&tls.ca_cert_pem, "ca certificate")?;
    webpki::anchor_from_trusted_cert(&der)
        .map(|anchor| anchor.to_owned())
        .map_err(|e| Error::InvalidPem {
            what: "ca certificate",
            reason: e.to_string(),
        })
}

/// The apiserver's rustls configuration: the serving certificate, ALPN `h2` then `http/1.1`,
/// and client certificates requested but never required or enforced at the TLS level.
pub fn server_config(tls: &ClusterTls) -> Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(ring_provider());
    let verifier = Arc::new(AnyClientCert::new(tls, &provider)?);
    let chain = vec![parse_cert(&tls.server_cert_pem, "serving certificate")?];
    let key = PrivateKeyDer::from_pem_slice(tls.server_key_pem.as_bytes()).map_err(|e| {
        Error::InvalidPem {
            what: "serving key",
            reason: e.to_string(),
        }
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Requests a client certificate and lets any through, like the upstream apiserver: a stale or
/// foreign certificate must not break the connection (the request then is anonymous and gets
/// 401/403 from the HTTP layer). The handshake signature is still verified, so whoever presents
/// a certificate holds its key; identity itself only comes from [`ClientVerifier`].
#[derive(Debug)]
struct AnyClientCert {
    hints: Vec<DistinguishedName>,
    algs: WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    fn new(tls: &ClusterTls, provider: &CryptoProvider) -> Result<AnyClientCert> {
        let anchor = ca_anchor(tls)?;
        Ok(AnyClientCert {
            hints: vec![DistinguishedName::in_sequence(anchor.subject.as_ref())],
            algs: provider.signature_verification_algorithms,
        })
    }

    /// Runs `verify` unless the certificate cannot even be parsed. Such a certificate carries
    /// no identity ([`ClientVerifier`] parses the same bytes the same way and rejects them), so
    /// skipping the proof of possession grants nothing, and the client stays anonymous instead
    /// of being disconnected.
    fn check_signature(
        cert: &CertificateDer<'_>,
        verify: impl FnOnce() -> Result<HandshakeSignatureValid, rustls::Error>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if webpki::EndEntityCert::try_from(cert).is_err() {
            return Ok(HandshakeSignatureValid::assertion());
        }
        verify()
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::check_signature(cert, || {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
        })
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::check_signature(cert, || {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
        })
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// An authenticated client: the certificate's CN and O values, as upstream's x509 authenticator
/// maps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// Client-certificate authentication against the cluster CA, prepared once and shared by all
/// requests.
#[derive(Debug, Clone)]
pub struct ClientVerifier {
    anchors: Vec<TrustAnchor<'static>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    pub fn new(tls: &ClusterTls) -> Result<ClientVerifier> {
        Ok(ClientVerifier {
            anchors: vec![ca_anchor(tls)?],
            algs: ring_provider().signature_verification_algorithms,
        })
    }

    /// The identity in `chain` (end-entity first, as the TLS peer sent it) if it chains to the
    /// cluster CA, is valid now and allows client authentication; `None` means anonymous.
    pub fn verify_client(&self, chain: &[CertificateDer<'_>]) -> Option<Identity> {
        self.verify_client_at(chain, UnixTime::now())
    }

    fn verify_client_at(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Option<Identity> {
        let (end_entity, intermediates) = chain.split_first()?;
        let cert = webpki::EndEntityCert::try_from(end_entity).ok()?;
        let usage = webpki::KeyUsage::client_auth();
        cert.verify_for_usage(
            self.algs.all,
            &self.anchors,
            intermediates,
            now,
            usage,
            None,
            None,
        )
        .ok()?;
        identity_of(end_entity)
    }
}

/// CN as user, every O as a group; a certificate without CN authenticates nobody (upstream
/// rejects it too).
fn identity_of(der: &CertificateDer<'_>) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    if user.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|org| org.as_str().ok().map(str::to_string))
        .collect();
    Some(Identity { user, groups })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::ResolvesClientCert;
    use rustls::sign::CertifiedKey;
    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn sans() -> SanConfig {
        SanConfig::for_host(&[])
    }

    fn read(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).unwrap()
    }

    fn not_after(pem: &str) -> i64 {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.validity().not_after.timestamp()
    }

    #[test]
    fn for_host_includes_required_names() {
        let extra: IpAddr = "203.0.113.7".parse().unwrap();
        let sans = SanConfig::for_host(&[extra]);
        for name in [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            assert!(sans.hostnames.iter().any(|h| h == name), "{name}");
        }
        for ip in ["127.0.0.1", "::1", "10.43.0.1", "203.0.113.7"] {
            assert!(sans.ips.contains(&ip.parse().unwrap()), "{ip}");
        }
        if let Some(host) = host_name() {
            assert!(sans.hostnames.contains(&host.to_ascii_lowercase()));
        }
    }

    #[test]
    fn parses_procfs_addresses() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
                    \x20    +-- 127.0.0.0/8 2 0 2\n           |-- 127.0.0.0\n              /8 host LOCAL\n\
                    \x20          |-- 127.0.0.1\n              /32 host LOCAL\n\
                    \x20       |-- 127.255.255.255\n           /32 link BROADCAST\n\
                    \x20          |-- 192.0.2.0\n              /24 link UNICAST\n\
                    \x20          |-- 192.0.2.2\n              /32 host LOCAL\n\
                    Local:\n           |-- 192.0.2.2\n              /32 host LOCAL\n";
        assert_eq!(parse_fib_trie(trie), vec![Ipv4Addr::new(192, 0, 2, 2)]);
        let inet6 = "fd000000000000000000000000000002 04 40 00 82     eth0\n\
                     fd000000000000000000000000000003 04 40 00 01     eth0\n\
                     fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n\
                     00000000000000000000000000000001 01 80 10 80       lo\n";
        assert_eq!(
            parse_if_inet6(inet6),
            vec!["fd00::2".parse::<Ipv6Addr>().unwrap()]
        );
    }

    #[test]
    fn creates_then_reloads_identical_files() {
        let dir = tempfile::tempdir().unwrap();
        let tls_dir = dir.path().join("nested/tls");
        let first = load_or_create(&tls_dir, &sans()).unwrap();
        let second = load_or_create(&tls_dir, &sans()).unwrap();
        assert_eq!(first, second);
        assert_eq!(read(&tls_dir, CA_CERT_FILE), first.ca_cert_pem);
        assert_eq!(read(&tls_dir, ADMIN_KEY_FILE), first.admin_key_pem);

        let dir_mode = fs::metadata(&tls_dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let mut names: Vec<String> = fs::read_dir(&tls_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "admin.crt",
                "admin.key",
                "ca.crt",
                "ca.key",
                "server.crt",
                "server.key"
            ],
            "no temporary files left behind"
        );
        for name in &names {
            let mode = fs::metadata(tls_dir.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }

    #[test]
    fn loosened_mode_is_restricted_on_load() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), &sans()).unwrap();
        let key = dir.path().join(CA_KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        load_or_create(dir.path(), &sans()).unwrap();
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn leaf_expiring_soon_is_reissued_by_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), &sans()).unwrap();
        let ca = Ca::from_pems(
            Path::new(CA_CERT_FILE),
            first.ca_cert_pem.clone(),
            first.ca_key_pem.clone(),
        )
        .unwrap();
        let spec = LeafSpec {
            common_name: ADMIN_USER,
            group: Some(ADMIN_GROUP),
            usage: Usage::Client,
            sans: &SanConfig::default(),
        };
        let short = issue_leaf(&ca, &spec, OffsetDateTime::now_utc() + Duration::days(10)).unwrap();
        write_atomic(&dir.path().join(ADMIN_CERT_FILE), short.cert_pem.as_bytes()).unwrap();
        write_atomic(&dir.path().join(ADMIN_KEY_FILE), short.key_pem.as_bytes()).unwrap();

        let second = load_or_create(dir.path(), &sans()).unwrap();
        assert_ne!(second.admin_cert_pem, short.cert_pem);
        assert!(not_after(&second.admin_cert_pem) > not_after(&short.cert_pem) + 300 * 86_400);
        assert_eq!(second.ca_cert_pem, first.ca_cert_pem);
        assert_eq!(second.server_cert_pem, first.server_cert_pem);
        assert_eq!(read(dir.path(), ADMIN_CERT_FILE), second.admin_cert_pem);
    }

    #[test]
    fn damaged_or_mismatched_leaves_are_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), &sans()).unwrap();
        write_atomic(&dir.path().join(SERVER_CERT_FILE), b"garbage").unwrap();
        // A valid key that does not belong to admin.crt.
        let other = new_key().unwrap().serialize_pem();
        write_atomic(&dir.path().join(ADMIN_KEY_FILE), other.as_bytes()).unwrap();
        let second = load_or_create(dir.path(), &sans()).unwrap();
        assert_ne!(second.server_cert_pem, first.server_cert_pem);
        assert_ne!(second.admin_key_pem, other);
        assert_ne!(second.admin_cert_pem, first.admin_cert_pem);
        assert_eq!(second.ca_key_pem, first.ca_key_pem);
        fs::remove_file(dir.path().join(ADMIN_CERT_FILE)).unwrap();
        let third = load_or_create(dir.path(), &sans()).unwrap();
        assert_ne!(third.admin_cert_pem, second.admin_cert_pem);
        assert_eq!(third.server_cert_pem, second.server_cert_pem);
    }

    #[test]
    fn serving_cert_is_reissued_for_a_new_san() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), &sans()).unwrap();
        let extra: IpAddr = "198.51.100.9".parse().unwrap();
        let mut wider = SanConfig::for_host(&[extra]);
        wider.hostnames.push("api.example.com".into());
        let second = load_or_create(dir.path(), &wider).unwrap();
        assert_ne!(second.server_cert_pem, first.server_cert_pem);
        assert_eq!(second.admin_cert_pem, first.admin_cert_pem);
        let der = CertificateDer::from_pem_slice(second.server_cert_pem.as_bytes()).unwrap();
        let cert = webpki::EndEntityCert::try_from(&der).unwrap();
        assert_eq!(missing_san(&cert, &wider), None);
        // Fewer names than the certificate has is fine: no churn.
        let third = load_or_create(dir.path(), &sans()).unwrap();
        assert_eq!(third.server_cert_pem, second.server_cert_pem);
    }

    #[test]
    fn damaged_ca_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), &sans()).unwrap();
        let ca_path = dir.path().join(CA_CERT_FILE);
        write_atomic(&ca_path, b"not a certificate").unwrap();
        let err = load_or_create(dir.path(), &sans()).unwrap_err();
        assert!(matches!(err, Error::DamagedCa { .. }));
        assert!(
            err.to_string().contains(&ca_path.display().to_string()),
            "{err}"
        );
        assert_eq!(read(dir.path(), CA_CERT_FILE), "not a certificate");

        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), &sans()).unwrap();
        let key_path = dir.path().join(CA_KEY_FILE);
        fs::remove_file(&key_path).unwrap();
        let err = load_or_create(dir.path(), &sans()).unwrap_err();
        assert!(
            err.to_string().contains(&key_path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn orphan_ca_key_without_certificate_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(&dir.path().join(CA_KEY_FILE), b"left over").unwrap();
        let tls = load_or_create(dir.path(), &sans()).unwrap();
        assert_ne!(tls.ca_key_pem, "left over");
    }

    #[test]
    fn admin_identity_and_foreign_ca() {
        let dir = tempfile::tempdir().unwrap();
        let tls = load_or_create(dir.path(), &sans()).unwrap();
        let verifier = ClientVerifier::new(&tls).unwrap();
        let admin = CertificateDer::from_pem_slice(tls.admin_cert_pem.as_bytes()).unwrap();
        assert_eq!(
            verifier.verify_client(&[admin]),
            Some(Identity {
                user: "system:admin".into(),
                groups: vec!["system:masters".into()],
            })
        );

        let (node, _) = issue_client_cert(&tls, "system:node:n1", &["system:nodes"]).unwrap();
        let node = CertificateDer::from_pem_slice(node.as_bytes()).unwrap();
        let identity = verifier.verify_client(&[node]).unwrap();
        assert_eq!(identity.user, "system:node:n1");
        assert_eq!(identity.groups, ["system:nodes"]);
        let (plain, _) = issue_client_cert(&tls, "alice", &[]).unwrap();
        let plain = CertificateDer::from_pem_slice(plain.as_bytes()).unwrap();
        let identity = verifier.verify_client(&[plain]).unwrap();
        assert_eq!(
            (identity.user.as_str(), identity.groups.len()),
            ("alice", 0)
        );
        assert!(matches!(
            issue_client_cert(&tls, "bob", &["a", "b"]),
            Err(Error::TooManyGroups { count: 2, .. })
        ));

        let other_dir = tempfile::tempdir().unwrap();
        let other = load_or_create(other_dir.path(), &sans()).unwrap();
        let foreign = CertificateDer::from_pem_slice(other.admin_cert_pem.as_bytes()).unwrap();
        assert_eq!(verifier.verify_client(&[foreign]), None);

        // The serving certificate chains to the CA but is not for client authentication.
        let server = CertificateDer::from_pem_slice(tls.server_cert_pem.as_bytes()).unwrap();
        assert_eq!(verifier.verify_client(&[server]), None);
        assert_eq!(verifier.verify_client(&[]), None);
        assert_eq!(
            verifier.verify_client(&[CertificateDer::from(b"garbage".to_vec())]),
            None
        );
    }

    #[test]
    fn every_organization_becomes_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let tls = load_or_create(dir.path(), &sans()).unwrap();
        let ca = Ca::from_pems(
            Path::new(CA_CERT_FILE),
            tls.ca_cert_pem.clone(),
            tls.ca_key_pem.clone(),
        )
        .unwrap();
        // rcgen keeps one value per attribute type; spelling the O attribute as a custom OID
        // gets a second one in, as other tools (openssl, cfssl) would write it.
        let key = new_key().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = subject("carol", Some("team-a"));
        params
            .distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 10]), "team-b");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &ca.issuer).unwrap();
        let identity = ClientVerifier::new(&tls)
            .unwrap()
            .verify_client(&[cert.der().clone()]);
        assert_eq!(
            identity,
            Some(Identity {
                user: "carol".into(),
                groups: vec!["team-a".into(), "team-b".into()],
            })
        );
    }

    #[test]
    fn expired_client_cert_is_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let tls = load_or_create(dir.path(), &sans()).unwrap();
        let verifier = ClientVerifier::new(&tls).unwrap();
        let admin = CertificateDer::from_pem_slice(tls.admin_cert_pem.as_bytes()).unwrap();
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(not_after(&tls.admin_cert_pem)).unwrap() + 1,
        ));
        assert_eq!(verifier.verify_client_at(&[admin], later), None);
    }

    // -- handshakes over an in-memory pipe ----------------------------------------------------

    /// What the client presents.
    enum ClientAuth {
        None,
        Pem(String, String),
        /// Arbitrary bytes as the certificate, with a real key to sign the handshake.
        Garbage,
    }

    /// Sends a fixed certificate chain, whatever it contains.
    #[derive(Debug)]
    struct Fixed(Arc<CertifiedKey>);

    impl ResolvesClientCert for Fixed {
        fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
        fn has_certs(&self) -> bool {
            true
        }
    }

    fn client_config(tls: &ClusterTls, auth: ClientAuth) -> rustls::ClientConfig {
        let provider = Arc::new(ring_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(tls.ca_cert_pem.as_bytes()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let key_pem = new_key().unwrap().serialize_pem();
        let mut config = match auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Pem(cert, key) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            ClientAuth::Garbage => {
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
                let signer = provider.key_provider.load_private_key(key).unwrap();
                let garbage = CertificateDer::from(b"definitely not x509".to_vec());
                let certified = CertifiedKey::new(vec![garbage], signer);
                builder.with_client_cert_resolver(Arc::new(Fixed(Arc::new(certified))))
            }
        };
        // What kubectl offers.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }

    /// Runs a handshake plus one round trip and returns what the server side authenticated.
    async fn handshake(
        tls: &ClusterTls,
        auth: ClientAuth,
        server_name: &str,
    ) -> (Option<Identity>, Option<Vec<u8>>) {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(tls).unwrap());
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(tls, auth)));
        let name = ServerName::try_from(server_name.to_string()).unwrap();
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let verifier = ClientVerifier::new(tls).unwrap();
        let server = async move {
            let mut stream = acceptor.accept(server_io).await.unwrap();
            let (_, conn) = stream.get_ref();
            let identity = conn
                .peer_certificates()
                .and_then(|c| verifier.verify_client(c));
            let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            stream.write_all(b"pong").await.unwrap();
            stream.flush().await.unwrap();
            (identity, alpn)
        };
        let client = async move {
            let mut stream = connector.connect(name, client_io).await.unwrap();
            stream.write_all(b"ping").await.unwrap();
            stream.flush().await.unwrap();
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"pong");
        };
        let (result, ()) = tokio::join!(server, client);
        result
    }

    #[tokio::test]
    async fn admin_cert_authenticates_over_tls() {
        let dir = tempfile::tempdir().unwrap();
        let tls = load_or_create(dir.path(), &sans()).unwrap();
        for server_name in ["localhost", "10.43.0.1", "kubernetes.default.svc"] {
            let auth = ClientAuth::Pem(tls.admin_cert_pem.clone(), tls.admin_key_pem.clone());
            let (identity, _) = handshake(&tls, auth, server_name).await;
            assert_eq!(
                identity,
                Some(Identity {
                    user: ADMIN_USER.into(),
                    groups: vec![ADMIN_GROUP.into()],
                }),
                "{server_name}"
            );
        }
    }

    #[tokio::test]
    async fn foreign_self_signed_cert_connects_anonymously() {
        let dir = tempfile::tempdir().unwrap();
        let tls = load_or_create(dir.path(), &sans()).unwrap();
        let key = new_key().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(ADMIN_USER, Some(ADMIN_GROUP));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.self_signed(&key).unwrap();
        let auth = ClientAuth::Pem(cert.pem(), key.serialize_pem());
        let (identity, _) = handshake(&tls, auth, "localhost").await;
        assert_eq!(identity, None);
    }

    #[tokio::test]
    async fn garbage_cert_connects_anonymously() {
        let dir = tempfile::tempdir().unwrap();
        let tls = load_or_create(dir.path(), &sans()).unwrap();
        let (identity, _) = handshake(&tls, ClientAuth::Garbage, "10.43.0.1").await;
        assert_eq!(identity, None);
    }

    #[tokio::test]
    async fn no_client_cert_connects_and_negotiates_h2() {
        let dir = tempfile::tempdir().unwrap();
        let tls = load_or_create(dir.path(), &sans()).unwrap();
        let (identity, alpn) = handshake(&tls, ClientAuth::None, "localhost").await;
        assert_eq!(identity, None);
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        let config = server_config(&tls).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
