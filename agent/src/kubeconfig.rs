//! Reading a kubeconfig: the current context's server, CA and client certificate as an API client configuration (embedded `*-data` or file paths).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k1s_controllers::ClientConfig;
use serde_json::Value;

/// Why a kubeconfig cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read kubeconfig {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a kubeconfig.
    #[error("kubeconfig {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The current context of the kubeconfig at `path` as a client configuration with
/// `user_agent`. Only client-certificate users are supported.
pub fn load(path: &Path, user_agent: &str) -> Result<ClientConfig> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path.parent().unwrap_or(Path::new(".")), user_agent).map_err(|message| {
        Error::Invalid {
            path: path.to_path_buf(),
            message,
        }
    })
}

fn named<'a>(doc: &'a Value, list: &str, name: &str, field: &str) -> Result<&'a Value, String> {
    doc[list]
        .as_array()
        .into_iter()
        .flatten()
        .find(|item| item["name"] == name)
        .map(|item| &item[field])
        .ok_or_else(|| format!("no {field} named {name:?}"))
}

/// `<field>-data` (base64) or `<field>` (a path relative to the kubeconfig's directory).
fn pem(section: &Value, field: &str, dir: &Path) -> Result<String, String> {
    if let Some(data) = section[format!("{field}-data")].as_str() {
        let bytes = STANDARD
            .decode(data.trim())
            .map_err(|e| format!("{field}-data: {e}"))?;
        return String::from_utf8(bytes).map_err(|e| format!("{field}-data: {e}"));
    }
    if let Some(file) = section[field].as_str() {
        let path = dir.join(file);
        return std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()));
    }
    Err(format!("no {field} or {field}-data"))
}

fn parse(text: &str, dir: &Path, user_agent: &str) -> Result<ClientConfig, String> {
    let doc: Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    let current = doc["current-context"]
        .as_str()
        .ok_or("no current-context")?;
    let context = named(&doc, "contexts", current, "context")?;
    let cluster_name = context["cluster"]
        .as_str()
        .ok_or("context has no cluster")?;
    let user_name = context["user"].as_str().ok_or("context has no user")?;
    let cluster = named(&doc, "clusters", cluster_name, "cluster")?;
    let user = named(&doc, "users", user_name, "user")?;
    Ok(ClientConfig {
        server: cluster["server"]
            .as_str()
            .ok_or("cluster has no server")?
            .to_string(),
        ca_pem: pem(cluster, "certificate-authority", dir)?,
        credentials: k1s_controllers::Credentials::Certificate {
            cert_pem: pem(user, "client-certificate", dir)?,
            key_pem: pem(user, "client-key", dir)?,
        },
        user_agent: user_agent.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_context_with_embedded_data() {
        let b = |s: &str| STANDARD.encode(s);
        let text = format!(
            "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {}
    server: \"https://127.0.0.1:6443\"
  name: default
contexts:
- context: {{cluster: default, user: admin}}
  name: default
current-context: default
kind: Config
users:
- name: admin
  user:
    client-certificate-data: {}
    client-key-data: {}
",
            b("CA"),
            b("CERT"),
            b("KEY")
        );
        let config = parse(&text, Path::new("."), "k1s/test").unwrap();
        assert_eq!(config.server, "https://127.0.0.1:6443");
        let k1s_controllers::Credentials::Certificate { cert_pem, key_pem } = &config.credentials
        else {
            panic!("a certificate user");
        };
        assert_eq!(
            (config.ca_pem.as_str(), cert_pem.as_str(), key_pem.as_str()),
            ("CA", "CERT", "KEY")
        );
        assert!(parse("kind: Config", Path::new("."), "x").is_err());
    }
}
