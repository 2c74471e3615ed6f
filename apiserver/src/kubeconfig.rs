//! The admin kubeconfig k1s writes for kubectl, laid out like k3s's `k3s.yaml` (cluster, context and user all named `default`, credentials embedded).

use std::fs;
use std::io;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::tls::{self, ClusterTls};

/// A kubeconfig for `server_url` that trusts the cluster CA and authenticates as the admin
/// certificate. Hand-written YAML: the shape is fixed and every value is either base64 (plain
/// YAML scalar) or the server URL, which is emitted as a JSON string (valid YAML) so that no
/// character in it can change the document's structure.
pub fn render(server_url: &str, tls: &ClusterTls) -> String {
    let server = serde_json::Value::from(server_url).to_string();
    let ca = STANDARD.encode(&tls.ca_cert_pem);
    let cert = STANDARD.encode(&tls.admin_cert_pem);
    let key = STANDARD.encode(&tls.admin_key_pem);
    format!(
        "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server}
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {{}}
users:
- name: default
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
"
    )
}

/// Writes `contents` to `path` atomically with mode 0600 (it holds the admin key), creating
/// missing parent directories.
pub fn write(path: &Path, contents: &str) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    tls::write_atomic(path, contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    #[test]
    fn renders_and_kubectl_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let tls =
            tls::load_or_create(&dir.path().join("tls"), &tls::SanConfig::for_host(&[])).unwrap();
        let url = "https://127.0.0.1:6443";
        let yaml = render(url, &tls);
        for field in [
            "certificate-authority-data: ",
            "client-certificate-data: ",
            "client-key-data: ",
        ] {
            assert!(yaml.contains(field), "{field}");
        }
        assert!(yaml.contains(&STANDARD.encode(&tls.admin_key_pem)));
        assert!(yaml.contains("current-context: default"));

        let path = dir.path().join("etc/k1s/k1s.yaml");
        write(&path, &yaml).unwrap();
        write(&path, &yaml).unwrap(); // replacing an existing file works too
        assert_eq!(fs::read_to_string(&path).unwrap(), yaml);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        if let Some(server) = kubectl_jsonpath(&path, "{.clusters[0].cluster.server}") {
            assert_eq!(server, url);
        }
        let ca = kubectl_jsonpath(&path, "{.clusters[0].cluster.certificate-authority-data}");
        if let Some(ca) = ca {
            assert_eq!(ca, STANDARD.encode(&tls.ca_cert_pem));
        }
    }

    #[test]
    fn awkward_server_url_stays_one_scalar() {
        let tls = ClusterTls {
            ca_cert_pem: "ca".into(),
            ca_key_pem: String::new(),
            server_cert_pem: String::new(),
            server_key_pem: String::new(),
            admin_cert_pem: "cert".into(),
            admin_key_pem: "key".into(),
        };
        let url = "https://[::1]:6443/#x: y";
        let yaml = render(url, &tls);
        assert!(yaml.contains(r#"    server: "https://[::1]:6443/#x: y""#));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        write(&path, &yaml).unwrap();
        if let Some(server) = kubectl_jsonpath(&path, "{.clusters[0].cluster.server}") {
            assert_eq!(server, url);
        }
    }

    /// `kubectl config view` output for `jsonpath`, or `None` when kubectl is not installed.
    fn kubectl_jsonpath(kubeconfig: &Path, jsonpath: &str) -> Option<String> {
        let kubectl = Path::new("/usr/bin/kubectl");
        if !kubectl.exists() {
            eprintln!("kubectl not installed; skipping the kubectl check");
            return None;
        }
        let output = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["config", "view", "--raw", "-o"])
            .arg(format!("jsonpath={jsonpath}"))
            .output()
            .unwrap();
        assert!(output.status.success(), "kubectl failed: {output:?}");
        Some(String::from_utf8(output.stdout).unwrap())
    }
}
