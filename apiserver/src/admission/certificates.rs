//! The CertificateSigningRequest plugins: CertificateApproval and CertificateSigning (approving a request, or issuing its certificate, needs the `approve` or `sign` verb on its signer) and CertificateSubjectRestriction (no request to the `kubernetes.io/kube-apiserver-client` signer may ask for the `system:masters` group).

use base64::Engine;
use futures_util::future::BoxFuture;
use serde_json::Value;
use x509_parser::prelude::FromDer;

use super::{Attributes, Lookup, Operation, Plugin};
use crate::auth::UserInfo;
use crate::status::{ApiError, ApiResult};

const GROUP: &str = "certificates.k8s.io";
const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// An update of a request's `approval` subresource (approve or deny) needs `approve` on its
/// signer.
pub struct CertificateApproval;

/// An update of a request's `status` that changes its certificate or conditions needs `sign`
/// on its signer.
pub struct CertificateSigning;

pub struct CertificateSubjectRestriction;

/// Upstream's `IsAuthorizedForSignerName`: `verb` on the `signers` resource named
/// `signer_name`, or else on `<domain>/*` (every signer of the name's domain).
async fn authorized_for_signer(
    cluster: &dyn Lookup,
    user: &UserInfo,
    verb: &str,
    signer_name: &str,
) -> bool {
    let attrs = |name: String| crate::auth::Attributes {
        user: user.clone(),
        verb: verb.into(),
        api_group: GROUP.into(),
        api_version: "*".into(),
        resource: "signers".into(),
        name,
        resource_request: true,
        ..crate::auth::Attributes::default()
    };
    if cluster.authorized(&attrs(signer_name.to_string())).await {
        return true;
    }
    let domain = signer_name.split('/').next().unwrap_or_default();
    cluster.authorized(&attrs(format!("{domain}/*"))).await
}

/// The stored request of an update of `subresource`, when `attrs` is one.
fn updated_request<'a>(attrs: &Attributes<'a>, subresource: &str) -> Option<ApiResult<&'a Value>> {
    if !attrs.is(GROUP, "certificatesigningrequests")
        || attrs.subresource != Some(subresource)
        || attrs.operation != Operation::Update
    {
        return None;
    }
    // Upstream's type assertion on the old object; every update here has one.
    Some(attrs.old_object.ok_or_else(|| {
        attrs.forbidden(None, "expected type CertificateSigningRequest, got: <nil>")
    }))
}

fn signer_name(csr: &Value) -> &str {
    csr.pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

impl Plugin for CertificateApproval {
    fn validate<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        _object: Option<&'a Value>,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            // The old object's signer: an approval cannot change the spec anyway.
            let Some(old) = updated_request(attrs, "approval") else {
                return Ok(());
            };
            let signer = signer_name(old?);
            if authorized_for_signer(cluster, attrs.user, "approve", signer).await {
                return Ok(());
            }
            Err(attrs.forbidden(
                None,
                &format!("user not permitted to approve requests with signerName {signer:?}"),
            ))
        })
    }
}

impl Plugin for CertificateSigning {
    fn validate<'a>(
        &'a self,
        attrs: &'a Attributes<'a>,
        object: Option<&'a Value>,
        cluster: &'a dyn Lookup,
        _warnings: &'a mut Vec<String>,
    ) -> BoxFuture<'a, ApiResult<()>> {
        Box::pin(async move {
            let (Some(old), Some(csr)) = (updated_request(attrs, "status"), object) else {
                return Ok(());
            };
            let old = old?;
            // Absent, null and empty are the same certificate and the same conditions (upstream
            // compares them semantically).
            let field = |o: &'a Value, name: &str| {
                o.pointer(&format!("/status/{name}")).filter(|v| match v {
                    Value::Null => false,
                    Value::String(s) => !s.is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    _ => true,
                })
            };
            if field(old, "certificate") == field(csr, "certificate")
                && field(old, "conditions") == field(csr, "conditions")
            {
                return Ok(());
            }
            let signer = signer_name(old);
            if authorized_for_signer(cluster, attrs.user, "sign", signer).await {
                return Ok(());
            }
            Err(attrs.forbidden(
                None,
                &format!("user not permitted to sign requests with signerName {signer:?}"),
            ))
        })
    }
}

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
    use crate::auth::Attributes as Asked;

    /// An update of `subresource` of a request for `signer`, from `old` to `new` status, by a
    /// cluster whose authorizer is `decide`: the error message, if refused.
    fn update(
        plugin: &dyn Plugin,
        subresource: &str,
        old: Value,
        new: Value,
        decide: fn(&Asked) -> bool,
    ) -> Result<(), String> {
        let user = UserInfo {
            name: "bob".into(),
            ..UserInfo::default()
        };
        let csr = |status: Value| json!({"metadata": {"name": "x"}, "spec": {"signerName": "example.com/foo"}, "status": status});
        let old = csr(old);
        let mut object = csr(new);
        let attrs = Attributes {
            operation: Operation::Update,
            subresource: Some(subresource),
            old_object: Some(&old),
            ..create(GROUP, "certificatesigningrequests", "", "x", &user)
        };
        let cluster = Fake {
            authorizer: Some(decide),
            ..Fake::default()
        };
        run(plugin, &attrs, &mut object, &cluster)
            .map(|_| ())
            .map_err(|e| e.message)
    }

    fn approved() -> Value {
        json!({"conditions": [{"type": "Approved", "status": "True", "reason": "ok"}]})
    }

    fn signers(verb: &'static str, a: &Asked) -> Option<String> {
        (a.verb == verb
            && a.api_group == GROUP
            && a.resource == "signers"
            && a.user.name == "bob"
            && a.namespace.is_empty())
        .then(|| a.name.clone())
    }

    #[test]
    fn approval_needs_approve_on_the_signer_or_its_domain() {
        let nothing: fn(&Asked) -> bool = |_| false;
        let err = update(
            &CertificateApproval,
            "approval",
            json!({}),
            approved(),
            nothing,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "certificatesigningrequests.certificates.k8s.io \"x\" is forbidden: user not permitted to approve requests with signerName \"example.com/foo\""
        );
        let exact: fn(&Asked) -> bool =
            |a| signers("approve", a).as_deref() == Some("example.com/foo");
        let domain: fn(&Asked) -> bool =
            |a| signers("approve", a).as_deref() == Some("example.com/*");
        let sign: fn(&Asked) -> bool = |a| signers("sign", a).is_some();
        for decide in [exact, domain] {
            update(
                &CertificateApproval,
                "approval",
                json!({}),
                approved(),
                decide,
            )
            .unwrap();
        }
        assert!(
            update(
                &CertificateApproval,
                "approval",
                json!({}),
                approved(),
                sign
            )
            .is_err()
        );
        // Other subresources are not approvals.
        update(
            &CertificateApproval,
            "status",
            json!({}),
            approved(),
            nothing,
        )
        .unwrap();
    }

    #[test]
    fn issuing_a_certificate_or_changing_conditions_needs_sign() {
        let nothing: fn(&Asked) -> bool = |_| false;
        let domain: fn(&Asked) -> bool = |a| signers("sign", a).as_deref() == Some("example.com/*");
        let issued = || json!({"conditions": approved()["conditions"], "certificate": "Y2VydA=="});
        let err = update(&CertificateSigning, "status", approved(), issued(), nothing).unwrap_err();
        assert_eq!(
            err,
            "certificatesigningrequests.certificates.k8s.io \"x\" is forbidden: user not permitted to sign requests with signerName \"example.com/foo\""
        );
        update(&CertificateSigning, "status", approved(), issued(), domain).unwrap();
        // A condition alone is a signer's too.
        assert!(
            update(
                &CertificateSigning,
                "status",
                json!({}),
                approved(),
                nothing
            )
            .is_err()
        );
        // Nothing a signer owns changed: no check (an empty list is no list).
        update(&CertificateSigning, "status", issued(), issued(), nothing).unwrap();
        update(
            &CertificateSigning,
            "status",
            json!({}),
            json!({"conditions": []}),
            nothing,
        )
        .unwrap();
        // Approval is CertificateApproval's.
        update(
            &CertificateSigning,
            "approval",
            json!({}),
            issued(),
            nothing,
        )
        .unwrap();
    }

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
