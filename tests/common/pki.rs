//! Throwaway certificates for TLS tests, made with `rcgen`: a CA, and leaf certificates it
//! signs (PEM text).
#![allow(dead_code)]

/// A self-signed CA named `name`: its parameters and key (to sign leaves) and its PEM.
pub fn ca(name: &str) -> (rcgen::CertificateParams, rcgen::KeyPair, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-signed CA");
    (params, key, cert.pem())
}

/// A certificate for `names` (DNS names or IP addresses) signed by the CA: (cert, key) PEM.
pub fn leaf(
    names: &[&str],
    ca_params: &rcgen::CertificateParams,
    ca_key: &rcgen::KeyPair,
) -> (String, String) {
    let params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let issuer = rcgen::Issuer::from_params(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).expect("signed leaf");
    (cert.pem(), key.serialize_pem())
}
