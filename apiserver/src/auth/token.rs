//! Service-account tokens: ES256 JWTs with upstream's bound-token claims, signed by a key generated at first start under `<data-dir>/tls/`, and the OIDC discovery documents that publish its public half.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde_json::{Value, json};
use sha2::Digest as _;

/// The issuer (and the API's own audience), as k3s and kubeadm name it.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The key file under `<data-dir>/tls/`.
pub const KEY_FILE: &str = "service-account.key";

const PEM_LABEL: &str = "PRIVATE KEY";

/// Why a key could not be loaded or a token could not be verified.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key file could not be read or written.
    #[error("cannot use the service-account key {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold a P-256 PKCS#8 key.
    #[error("the service-account key {path} is not a P-256 PKCS#8 key")]
    BadKey { path: String },
    /// The token is not a JWT this signer issued, or its signature is wrong.
    #[error("invalid bearer token")]
    Invalid,
    /// The token has expired or is not yet valid.
    #[error("token has expired")]
    Expired,
    /// The token's audiences do not include any accepted one.
    #[error("token audiences {0:?} is invalid for the target audiences")]
    Audience(Vec<String>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an object a token is bound to is: a pod or a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundObject {
    /// `Pod` or `Secret`.
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// The claims of a service-account token (upstream's `privateClaims` plus the registered ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub namespace: String,
    pub service_account: String,
    pub service_account_uid: String,
    pub audiences: Vec<String>,
    pub issued_at: i64,
    pub not_before: i64,
    pub expires: i64,
    pub id: String,
    pub bound: Option<BoundObject>,
}

impl Claims {
    /// `system:serviceaccount:<ns>:<name>`.
    pub fn subject(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }

    fn to_json(&self) -> Value {
        let mut k8s = json!({
            "namespace": self.namespace,
            "serviceaccount": {"name": self.service_account, "uid": self.service_account_uid},
        });
        if let Some(bound) = &self.bound {
            let field = if bound.kind == "Pod" { "pod" } else { "secret" };
            k8s[field] = json!({"name": bound.name, "uid": bound.uid});
        }
        json!({
            "aud": self.audiences,
            "exp": self.expires,
            "iat": self.issued_at,
            "iss": ISSUER,
            "jti": self.id,
            "kubernetes.io": k8s,
            "nbf": self.not_before,
            "sub": self.subject(),
        })
    }

    fn from_json(v: &Value) -> Option<Claims> {
        let k8s = v.get("kubernetes.io")?;
        let s = |p: &str| k8s.pointer(p).and_then(Value::as_str).map(str::to_string);
        let bound = [("Pod", "/pod"), ("Secret", "/secret")]
            .into_iter()
            .find_map(|(kind, p)| {
                Some(BoundObject {
                    kind: kind.to_string(),
                    name: s(&format!("{p}/name"))?,
                    uid: s(&format!("{p}/uid")).unwrap_or_default(),
                })
            });
        let audiences = match v.get("aud")? {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => return None,
        };
        let claims = Claims {
            namespace: s("/namespace")?,
            service_account: s("/serviceaccount/name")?,
            service_account_uid: s("/serviceaccount/uid").unwrap_or_default(),
            audiences,
            issued_at: v.get("iat").and_then(Value::as_i64).unwrap_or(0),
            not_before: v.get("nbf").and_then(Value::as_i64).unwrap_or(0),
            expires: v.get("exp")?.as_i64()?,
            id: v
                .get("jti")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            bound,
        };
        (v.get("sub")?.as_str()? == claims.subject()).then_some(claims)
    }
}

/// The token signer and verifier.
pub struct Signer {
    key: EcdsaKeyPair,
    public: Vec<u8>,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Signer {
    /// Load the key under `dir`, generating it (0600) at first start.
    pub fn load_or_create(dir: &Path) -> Result<Signer> {
        let path = dir.join(KEY_FILE);
        let shown = path.display().to_string();
        let io = |source| Error::Io {
            path: shown.clone(),
            source,
        };
        let pkcs8 = match std::fs::read_to_string(&path) {
            Ok(pem) => {
                let body: String = pem
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>();
                base64::engine::general_purpose::STANDARD
                    .decode(body.trim())
                    .map_err(|_| Error::BadKey {
                        path: shown.clone(),
                    })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = SystemRandom::new();
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| Error::BadKey {
                        path: shown.clone(),
                    })?;
                let encoded = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
                let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
                for chunk in encoded.as_bytes().chunks(64) {
                    pem.push_str(&String::from_utf8_lossy(chunk));
                    pem.push('\n');
                }
                pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
                std::fs::create_dir_all(dir).map_err(io)?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(pem.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        Signer::from_pkcs8(&pkcs8).ok_or(Error::BadKey { path: shown })
    }

    /// A signer from a PKCS#8 P-256 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Option<Signer> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).ok()?;
        let public = key.public_key().as_ref().to_vec();
        let kid = b64(&sha2::Sha256::digest(&public));
        Some(Signer {
            key,
            public,
            kid,
            rng,
        })
    }

    /// A fresh in-memory signer (tests).
    #[cfg(test)]
    pub fn generate() -> Signer {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("key generation");
        Signer::from_pkcs8(doc.as_ref()).expect("generated key")
    }

    /// A signed JWT for `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_json().to_string().as_bytes())
        );
        let signature = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| Error::Invalid)?;
        Ok(format!("{input}.{}", b64(signature.as_ref())))
    }

    /// Whether `token` looks like a JWT this issuer signed (so other authenticators can be
    /// skipped for anything else).
    pub fn issued(token: &str) -> bool {
        let mut parts = token.split('.');
        let claims = parts.nth(1).and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        });
        let claims: Option<Value> = claims.and_then(|c| serde_json::from_slice(&c).ok());
        claims.is_some_and(|c| c.get("iss").and_then(Value::as_str) == Some(ISSUER))
    }

    /// Verify `token`'s signature, issuer, times (at `now`, Unix seconds) and that one of its
    /// audiences is in `audiences`.
    pub fn verify(&self, token: &str, audiences: &[String], now: i64) -> Result<Claims> {
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, signature] = parts.as_slice() else {
            return Err(Error::Invalid);
        };
        let decode = |p: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .map_err(|_| Error::Invalid)
        };
        let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| Error::Invalid)?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(Error::Invalid);
        }
        let input = &token[..token.rfind('.').ok_or(Error::Invalid)?];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(input.as_bytes(), &decode(signature)?)
            .map_err(|_| Error::Invalid)?;
        let payload: Value =
            serde_json::from_slice(&decode(payload)?).map_err(|_| Error::Invalid)?;
        if payload.get("iss").and_then(Value::as_str) != Some(ISSUER) {
            return Err(Error::Invalid);
        }
        let claims = Claims::from_json(&payload).ok_or(Error::Invalid)?;
        // Upstream's leeway for clock skew.
        const LEEWAY: i64 = 60;
        if now > claims.expires || now + LEEWAY < claims.not_before {
            return Err(Error::Expired);
        }
        if !claims.audiences.iter().any(|a| audiences.contains(a)) {
            return Err(Error::Audience(claims.audiences));
        }
        Ok(claims)
    }

    /// `/openid/v1/jwks`.
    pub fn jwks(&self) -> Value {
        let (x, y) = self.public[1..].split_at(32);
        json!({"keys": [{
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": "ES256",
            "x": b64(x),
            "y": b64(y),
        }]})
    }
}

/// `/.well-known/openid-configuration`.
pub fn openid_configuration() -> Value {
    json!({
        "issuer": ISSUER,
        "jwks_uri": format!("{ISSUER}/openid/v1/jwks"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            namespace: "default".into(),
            service_account: "builder".into(),
            service_account_uid: "u-1".into(),
            audiences: vec![ISSUER.into()],
            issued_at: 1000,
            not_before: 1000,
            expires: 4600,
            id: "j".into(),
            bound: Some(BoundObject {
                kind: "Pod".into(),
                name: "p".into(),
                uid: "pu".into(),
            }),
        }
    }

    #[test]
    fn signs_and_verifies_bound_tokens() {
        let signer = Signer::generate();
        let token = signer.sign(&claims()).unwrap();
        assert!(Signer::issued(&token));
        let got = signer.verify(&token, &[ISSUER.into()], 2000).unwrap();
        assert_eq!(got, claims());
        assert_eq!(got.subject(), "system:serviceaccount:default:builder");
    }

    #[test]
    fn refuses_expired_foreign_tampered_and_other_audiences() {
        let signer = Signer::generate();
        let token = signer.sign(&claims()).unwrap();
        assert!(matches!(
            signer.verify(&token, &[ISSUER.into()], 4601),
            Err(Error::Expired)
        ));
        assert!(matches!(
            signer.verify(&token, &["foo".into()], 2000),
            Err(Error::Audience(_))
        ));
        let other = Signer::generate();
        assert!(matches!(
            other.verify(&token, &[ISSUER.into()], 2000),
            Err(Error::Invalid)
        ));
        let mut forged = claims();
        forged.service_account = "admin".into();
        let forged_payload = b64(forged.to_json().to_string().as_bytes());
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert!(matches!(
            signer.verify(&tampered, &[ISSUER.into()], 2000),
            Err(Error::Invalid)
        ));
    }

    #[test]
    fn key_persists_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let first = Signer::load_or_create(dir.path()).unwrap();
        let token = first.sign(&claims()).unwrap();
        let second = Signer::load_or_create(dir.path()).unwrap();
        assert!(second.verify(&token, &[ISSUER.into()], 2000).is_ok());
        assert_eq!(first.jwks(), second.jwks());
    }
}
