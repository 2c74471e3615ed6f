//! CertificateSubjectRestriction: no CertificateSigningRequest for the `kubernetes.io/kube-apiserver-client` signer may ask for the `system:masters` group.

use base64::Engine;
use futures_util::future::BoxFuture;
use serde_json::Value;
use x509_parser::prelude::FromDer;

use super::{Attributes, Lookup, Operation, Plugin};
use crate::status::{ApiError, ApiResult};

const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

pub struct CertificateSubjectRestriction;

/// The organizations (groups) a base64 PEM certificate request's subject names.
fn organizations(request: &str) -> Result<Vec<String>, String> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(request)
        .map_err(|e| e.to_string())?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&der).map_err(|e| e.to_string())?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .map_err(|e| e.to_string())?;
    Ok(csr
        .certification_request_info
        .subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect())
}

impl Plugin for CertificateSubjectRestriction {
    fn validate<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: Option<&'a Value>,
        _cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        let result = (|| {
            let Some(csr) = object else { return Ok(()) };
            if !attrs.is("certificates.k8s.io", "certificatesigningrequests")
                || attrs.subresource.is_some()
                || attrs.operation != Operation::Create
                || csr.pointer("/spec/signerName").and_then(Value::as_str) != Some(CLIENT_SIGNER)
            {
                return Ok(());
            }
            let request = csr
                .pointer("/spec/request")
                .and_then(Value::as_str)
                .unwrap_or("");
            let groups = organizations(request)
                .map_err(|e| ApiError::internal(format!("failed to parse CSR: {e}")))?;
            if groups.iter().any(|g| g == "system:masters") {
                return Err(attrs.forbidden(
                    Some(csr),
                    &format!(
                        "use of {CLIENT_SIGNER} signer with system:masters group is not allowed"
                    ),
                ));
            }
            Ok(())
        })();
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{Fake, admin, create, run};
    use super::*;

    fn request(org: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org);
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        base64::engine::general_purpose::STANDARD.encode(pem)
    }

    #[test]
    fn system_masters_cannot_be_requested_from_the_client_signer() {
        let user = admin();
        let attrs = create(
            "certificates.k8s.io",
            "certificatesigningrequests",
            "",
            "alice",
            &user,
        );
        let csr = |org: &str, signer: &str| json!({"metadata": {"name": "alice"}, "spec": {"signerName": signer, "request": request(org), "usages": ["client auth"]}});
        let err = run(
            &CertificateSubjectRestriction,
            &attrs,
            &mut csr("system:masters", CLIENT_SIGNER),
            &Fake::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "certificatesigningrequests.certificates.k8s.io \"alice\" is forbidden: use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
        );
        run(
            &CertificateSubjectRestriction,
            &attrs,
            &mut csr("dev", CLIENT_SIGNER),
            &Fake::default(),
        )
        .unwrap();
        run(
            &CertificateSubjectRestriction,
            &attrs,
            &mut csr("system:masters", "example.com/other"),
            &Fake::default(),
        )
        .unwrap();
    }
}
