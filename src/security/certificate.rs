//! The principal of a client on an SSL listener, as Kafka's DefaultKafkaPrincipalBuilder
//! makes it: `User:` and the subject distinguished name of the client's certificate in
//! RFC 2253 form (`CN=alice,OU=eng,O=Example`: the last RDN of the certificate first),
//! passed through `ssl.principal.mapping.rules`; `User:ANONYMOUS` without a certificate.
//!
//! The names of the form are Java's `X500Principal.getName(RFC2253)`: CN, C, L, ST, O, OU,
//! STREET, DC and UID by keyword with their string values escaped as RFC 2253 says; any
//! other attribute by its dotted OID with `#` and the hex of its DER value (so an e-mail
//! address reads `1.2.840.113549.1.9.1=#16...`, as it does for Kafka).

use crate::config::tls::PrincipalRules;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::AttributeTypeAndValue;

/// The principal of a client with no certificate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// A string value escaped as RFC 2253 §2.4 asks.
fn escape(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

/// `#` and the hex of the value's DER encoding (tag, length, contents).
fn hex_der(attr: &AttributeTypeAndValue<'_>, out: &mut String) {
    let value = attr.attr_value();
    let header = &value.header;
    let contents = attr.as_slice();
    let mut der = Vec::with_capacity(contents.len().saturating_add(8));
    let class = (header.class() as u8) << 6;
    let constructed = if header.is_constructed() { 0x20 } else { 0 };
    let tag = header.tag().0;
    if tag < 31 {
        der.push(class | constructed | tag as u8);
    } else {
        der.push(class | constructed | 0x1f);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        let last = groups.len().saturating_sub(1);
        for (i, g) in groups.iter().rev().enumerate() {
            der.push(if i < last { g | 0x80 } else { *g });
        }
    }
    let len = contents.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        der.push(0x80 | significant.len() as u8);
        der.extend_from_slice(significant);
    }
    der.extend_from_slice(contents);
    out.push('#');
    for b in der {
        out.push_str(&format!("{b:02x}"));
    }
}

/// The subject distinguished name of a DER certificate in RFC 2253 form.
pub fn subject_dn(der: &[u8]) -> Result<String, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let rdns: Vec<_> = cert.subject().iter().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, attr) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = attr.attr_type().to_id_string();
            match (keyword(&oid), attr.as_str()) {
                (Some(k), Ok(value)) => {
                    out.push_str(k);
                    out.push('=');
                    escape(value, &mut out);
                }
                (k, _) => {
                    out.push_str(k.unwrap_or(&oid));
                    out.push('=');
                    hex_der(attr, &mut out);
                }
            }
        }
    }
    Ok(out)
}

/// The principal of a client whose certificate chain (leaf first) is `chain`: `Err` when
/// the certificate cannot be read or no mapping rule matches its name (Kafka refuses the
/// connection then).
pub fn principal(
    chain: Option<&[impl AsRef<[u8]>]>,
    rules: &PrincipalRules,
) -> Result<String, String> {
    let Some(leaf) = chain.and_then(|c| c.first()) else {
        return Ok(ANONYMOUS.to_string());
    };
    let dn = subject_dn(leaf.as_ref())?;
    match rules.apply(&dn) {
        Some(name) => Ok(format!("User:{name}")),
        None => Err(format!(
            "no ssl.principal.mapping.rules rule matches {dn:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_follow_rfc_2253() {
        let mut out = String::new();
        escape("#a, b+c;\"d\\<e> ", &mut out);
        assert_eq!(out, "\\#a\\, b\\+c\\;\\\"d\\\\\\<e\\>\\ ");
        let mut out = String::new();
        escape(" x", &mut out);
        assert_eq!(out, "\\ x");
    }

    #[test]
    fn subject_names_read_as_java_writes_them() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let dn = &mut params.distinguished_name;
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc.");
        dn.push(rcgen::DnType::OrganizationalUnitName, "eng");
        dn.push(rcgen::DnType::CommonName, "alice");
        dn.push(
            rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            rcgen::DnValue::Ia5String("a@x.io".try_into().unwrap()),
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dn = subject_dn(cert.der()).unwrap();
        assert_eq!(
            dn,
            "1.2.840.113549.1.9.1=#16066140782e696f,CN=alice,OU=eng,O=Example\\, Inc.,C=DE"
        );
        let rules = PrincipalRules::parse("RULE:^.*CN=([^,]*),OU=(.*?),.*$/$1.$2/U").unwrap();
        let chain = [cert.der().to_vec()];
        assert_eq!(
            principal(Some(&chain[..]), &rules).unwrap(),
            "User:ALICE.ENG"
        );
        let none = PrincipalRules::parse("RULE:^CN=bob,.*$/bob/").unwrap();
        assert!(
            principal(Some(&chain[..]), &none).is_err(),
            "no rule matches"
        );
        let all = PrincipalRules::default();
        assert_eq!(
            principal(Some(&chain[..]), &all).unwrap(),
            format!("User:{dn}")
        );
    }

    #[test]
    fn no_certificate_is_anonymous() {
        let none: Option<&[Vec<u8>]> = None;
        assert_eq!(
            principal(none, &PrincipalRules::default()).unwrap(),
            ANONYMOUS
        );
        let empty: Vec<Vec<u8>> = Vec::new();
        assert_eq!(
            principal(Some(&empty[..]), &PrincipalRules::default()).unwrap(),
            ANONYMOUS
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(subject_dn(&[]).is_err());
        assert!(subject_dn(&[0x30, 0x82, 0xff, 0xff, 1, 2, 3]).is_err());
        let chain = [vec![0x30u8, 0x03, 0x02, 0x01, 0x00]];
        assert!(principal(Some(&chain[..]), &PrincipalRules::default()).is_err());
    }
}
