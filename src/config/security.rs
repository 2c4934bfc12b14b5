//! Listeners and their security protocols, TLS and SASL settings, with Kafka's names.
//!
//! `listeners = "PLAINTEXT://:9092,SASL_SSL://:9094"` names each listener, its host and
//! its port; `listener.security.protocol.map` maps a listener name to a protocol (by
//! default each of Kafka's four protocol names maps to itself), and
//! `advertised.listeners` gives the `HOST:PORT` clients are told for a listener. With
//! `listeners` empty, `listen` and `advertised` describe one PLAINTEXT listener, as before.
//! The keys are checked one by one as they are set and resolved together by
//! [`SecurityConfig::listeners`], since a TOML file may give them in any order.

use super::parse::{ConfigError, bad, parse_bool, parse_num, parse_positive};

/// Kafka's `security.protocol` of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        match name {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `ssl.client.auth`: whether a TLS listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// A SASL mechanism the broker implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// One resolved listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its name in `listeners` (`PLAINTEXT` for the `listen` shorthand).
    pub name: String,
    pub protocol: SecurityProtocol,
    /// `HOST:PORT` to bind; an empty host binds every address.
    pub bind: String,
    /// `HOST:PORT` clients are told, if configured.
    pub advertised: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConfig {
    pub listeners: String,
    pub advertised_listeners: String,
    pub protocol_map: String,
    /// PEM file with the private key and the certificate chain.
    pub ssl_keystore_location: Option<String>,
    /// PEM file with the CA certificates client certificates are checked against.
    pub ssl_truststore_location: Option<String>,
    pub ssl_client_auth: ClientAuth,
    pub sasl_enabled_mechanisms: Vec<Mechanism>,
    /// The largest frame a SASL listener reads before the client has authenticated
    /// (Kafka's `sasl.server.max.receive.size`).
    pub sasl_max_receive_bytes: u64,
    /// A failed authentication is answered this long after it was decided (Kafka's
    /// `connection.failed.authentication.delay.ms`), which bounds how fast one
    /// connection can guess.
    pub failed_authentication_delay_ms: u64,
    /// ACLs are checked (`authorizer.enabled`).
    pub authorizer_enabled: bool,
    /// Principals every check allows (`super.users`, `User:a;User:b`).
    pub super_users: Vec<String>,
    /// A resource no ACL names is open to everyone (`allow.everyone.if.no.acl.found`).
    pub allow_everyone_if_no_acl_found: bool,
    /// How long a SASL session lasts before the client must re-authenticate (KIP-368's
    /// `connections.max.reauth.ms`; 0: for ever).
    pub connections_max_reauth_ms: u64,
    /// Certificate principals and reloading (`config::tls`).
    pub tls: super::tls::TlsConfig,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            listeners: String::new(),
            advertised_listeners: String::new(),
            protocol_map: String::new(),
            ssl_keystore_location: None,
            ssl_truststore_location: None,
            ssl_client_auth: ClientAuth::None,
            sasl_enabled_mechanisms: Mechanism::ALL.to_vec(),
            sasl_max_receive_bytes: 524_288,
            failed_authentication_delay_ms: 100,
            authorizer_enabled: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            connections_max_reauth_ms: 0,
            tls: super::tls::TlsConfig::default(),
        }
    }
}

/// Splits `NAME://HOST:PORT` into its name and address, checking the port.
fn split_endpoint<'a>(key: &str, item: &'a str) -> Result<(&'a str, &'a str), ConfigError> {
    let (name, addr) = item
        .split_once("://")
        .ok_or_else(|| bad(key, item, "expected NAME://HOST:PORT"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad(key, item, "a listener name is letters, digits and _"));
    }
    let (_, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad(key, item, "expected NAME://HOST:PORT"))?;
    parse_num::<u16>(key, port)?;
    Ok((name, addr))
}

fn items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

impl SecurityConfig {
    pub const KEYS: &'static [&'static str] = &[
        "listeners",
        "advertised.listeners",
        "listener.security.protocol.map",
        "ssl.keystore.type",
        "ssl.keystore.location",
        "ssl.key.password",
        "ssl.truststore.type",
        "ssl.truststore.location",
        "ssl.client.auth",
        "sasl.enabled.mechanisms",
        "sasl.server.max.receive.size",
        "connection.failed.authentication.delay.ms",
        "authorizer.enabled",
        "super.users",
        "allow.everyone.if.no.acl.found",
        "connections.max.reauth.ms",
        "ssl.principal.mapping.rules",
        "ssl.reload.interval.ms",
    ];

    /// Sets one of [`Self::KEYS`]; `Ok(false)` when the key is not a security setting.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let optional = |v: &str| (!v.is_empty()).then(|| v.to_string());
        match key {
            "listeners" | "advertised.listeners" => {
                for item in items(value) {
                    split_endpoint(key, item)?;
                }
                if key == "listeners" {
                    self.listeners = value.to_string();
                } else {
                    self.advertised_listeners = value.to_string();
                }
            }
            "listener.security.protocol.map" => {
                for item in items(value) {
                    let (_, protocol) = item
                        .split_once(':')
                        .ok_or_else(|| bad(key, item, "expected NAME:PROTOCOL"))?;
                    if SecurityProtocol::parse(protocol).is_none() {
                        return Err(bad(
                            key,
                            item,
                            "protocols are PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL",
                        ));
                    }
                }
                self.protocol_map = value.to_string();
            }
            "ssl.keystore.type" | "ssl.truststore.type" => {
                if value != "PEM" {
                    return Err(bad(key, value, "only PEM files are supported"));
                }
            }
            "ssl.key.password" => {
                if !value.is_empty() {
                    return Err(bad(
                        key,
                        "(hidden)",
                        "encrypted private keys are not supported: give an unencrypted PEM key",
                    ));
                }
            }
            "ssl.keystore.location" => self.ssl_keystore_location = optional(value),
            "ssl.truststore.location" => self.ssl_truststore_location = optional(value),
            "ssl.client.auth" => {
                self.ssl_client_auth = match value {
                    "none" => ClientAuth::None,
                    "requested" => ClientAuth::Requested,
                    "required" => ClientAuth::Required,
                    _ => return Err(bad(key, value, "expected none, requested or required")),
                }
            }
            "sasl.enabled.mechanisms" => {
                let mut list = Vec::new();
                for item in items(value) {
                    let m = Mechanism::parse(item).ok_or_else(|| {
                        bad(
                            key,
                            item,
                            "mechanisms are PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
                        )
                    })?;
                    if !list.contains(&m) {
                        list.push(m);
                    }
                }
                self.sasl_enabled_mechanisms = list;
            }
            "sasl.server.max.receive.size" => {
                let v = parse_positive(key, value)?;
                if v > i32::MAX as u64 {
                    return Err(bad(key, value, "must fit a Kafka frame length (i32)"));
                }
                self.sasl_max_receive_bytes = v;
            }
            "connection.failed.authentication.delay.ms" => {
                self.failed_authentication_delay_ms = parse_num(key, value)?
            }
            "authorizer.enabled" => self.authorizer_enabled = parse_bool(key, value)?,
            "connections.max.reauth.ms" => self.connections_max_reauth_ms = parse_num(key, value)?,
            "allow.everyone.if.no.acl.found" => {
                self.allow_everyone_if_no_acl_found = parse_bool(key, value)?
            }
            "super.users" => {
                let mut users = Vec::new();
                for u in value.split(';').map(str::trim).filter(|u| !u.is_empty()) {
                    if u.strip_prefix("User:").is_none_or(str::is_empty) {
                        return Err(bad(key, u, "principals are User:NAME, separated by ;"));
                    }
                    users.push(u.to_string());
                }
                self.super_users = users;
            }
            other => return self.tls.set(other, value),
        }
        Ok(true)
    }

    /// The protocol of listener `name`: from the map when one is given, else the name
    /// itself when it is a protocol's.
    fn protocol_of(&self, name: &str) -> Result<SecurityProtocol, ConfigError> {
        let key = "listener.security.protocol.map";
        if !self.protocol_map.is_empty() {
            return items(&self.protocol_map)
                .filter_map(|i| i.split_once(':'))
                .find(|(n, _)| *n == name)
                .and_then(|(_, p)| SecurityProtocol::parse(p))
                .ok_or_else(|| bad(key, &self.protocol_map, &format!("no entry for {name}")));
        }
        SecurityProtocol::parse(name).ok_or_else(|| {
            bad(
                "listeners",
                name,
                "a listener whose name is not a protocol needs listener.security.protocol.map",
            )
        })
    }

    /// The listeners to bind: those of `listeners`, or one PLAINTEXT listener made of
    /// `listen` and `advertised` when it is empty.
    pub fn listeners(
        &self,
        listen: &str,
        advertised: Option<&str>,
    ) -> Result<Vec<Listener>, ConfigError> {
        if self.listeners.trim().is_empty() {
            return Ok(vec![Listener {
                name: "PLAINTEXT".to_string(),
                protocol: SecurityProtocol::Plaintext,
                bind: listen.to_string(),
                advertised: advertised.map(str::to_string),
            }]);
        }
        let mut out: Vec<Listener> = Vec::new();
        for item in items(&self.listeners) {
            let (name, addr) = split_endpoint("listeners", item)?;
            if out.iter().any(|l| l.name == name) {
                return Err(bad("listeners", item, "listener name given twice"));
            }
            let port = addr.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
            if out
                .iter()
                .any(|l| l.bind.rsplit_once(':').map(|(_, p)| p) == Some(port))
            {
                return Err(bad("listeners", item, "two listeners on one port"));
            }
            let bind = match addr.strip_prefix(':') {
                Some(port) => format!("0.0.0.0:{port}"),
                None => addr.to_string(),
            };
            out.push(Listener {
                name: name.to_string(),
                protocol: self.protocol_of(name)?,
                bind,
                advertised: None,
            });
        }
        for item in items(&self.advertised_listeners) {
            let (name, addr) = split_endpoint("advertised.listeners", item)?;
            let listener = out.iter_mut().find(|l| l.name == name).ok_or_else(|| {
                bad(
                    "advertised.listeners",
                    item,
                    "names a listener that `listeners` does not have",
                )
            })?;
            if addr.starts_with(':') {
                return Err(bad("advertised.listeners", item, "needs a host"));
            }
            listener.advertised = Some(addr.to_string());
        }
        Ok(out)
    }

    /// Checks the settings together, once every source has been applied. `listen_set`:
    /// `listen` or `advertised` was given, which `listeners` would silently override.
    pub fn validate(
        &self,
        listen: &str,
        advertised: Option<&str>,
        listen_set: bool,
    ) -> Result<(), ConfigError> {
        if !self.listeners.trim().is_empty() && listen_set {
            return Err(bad(
                "listeners",
                &self.listeners,
                "set either listeners (and advertised.listeners) or listen (and advertised)",
            ));
        }
        let listeners = self.listeners(listen, advertised)?;
        if listeners.iter().any(|l| l.protocol.tls()) && self.ssl_keystore_location.is_none() {
            return Err(bad(
                "ssl.keystore.location",
                "",
                "an SSL or SASL_SSL listener needs a PEM key and certificate chain",
            ));
        }
        if self.ssl_client_auth != ClientAuth::None && self.ssl_truststore_location.is_none() {
            return Err(bad(
                "ssl.truststore.location",
                "",
                "ssl.client.auth needs the CA certificates to check clients against",
            ));
        }
        if listeners.iter().any(|l| l.protocol.sasl()) && self.sasl_enabled_mechanisms.is_empty() {
            return Err(bad(
                "sasl.enabled.mechanisms",
                "",
                "a SASL listener needs at least one mechanism",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<SecurityConfig, ConfigError> {
        let mut c = SecurityConfig::default();
        for (k, v) in pairs {
            assert!(c.set(k, v)?, "{k}");
        }
        Ok(c)
    }

    #[test]
    fn listen_is_one_plaintext_listener() {
        let c = SecurityConfig::default();
        let l = c.listeners("127.0.0.1:9092", Some("h:1")).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[0].bind, "127.0.0.1:9092");
        assert_eq!(l[0].advertised.as_deref(), Some("h:1"));
    }

    #[test]
    fn listeners_resolve_with_kafka_names_and_the_map() {
        let c = config(&[
            (
                "listeners",
                "PLAINTEXT://:9092,SASL_PLAINTEXT://127.0.0.1:9093,INTERNAL://:9095",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,INTERNAL:SASL_SSL",
            ),
            ("advertised.listeners", "INTERNAL://broker1:19095"),
        ])
        .unwrap();
        let l = c.listeners("ignored:1", None).unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].bind, "0.0.0.0:9092");
        assert_eq!(l[1].protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!(l[1].bind, "127.0.0.1:9093");
        assert_eq!(l[2].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l[2].advertised.as_deref(), Some("broker1:19095"));
        // A TLS listener needs a key.
        assert!(c.validate("x:1", None, false).is_err());
    }

    #[test]
    fn bad_listener_settings_are_refused() {
        assert!(config(&[("listeners", "PLAINTEXT:9092")]).is_err());
        assert!(config(&[("listeners", "PLAINTEXT://:99999")]).is_err());
        assert!(config(&[("listener.security.protocol.map", "A:TLS")]).is_err());
        assert!(config(&[("ssl.client.auth", "maybe")]).is_err());
        assert!(config(&[("sasl.enabled.mechanisms", "GSSAPI")]).is_err());
        assert!(config(&[("ssl.keystore.type", "JKS")]).is_err());
        assert!(config(&[("super.users", "alice")]).is_err());
        let c = config(&[("super.users", "User:admin; User:ops")]).unwrap();
        assert_eq!(c.super_users, ["User:admin", "User:ops"]);
        let c = config(&[("listeners", "FOO://:1")]).unwrap();
        assert!(c.listeners("x:1", None).is_err(), "FOO has no protocol");
        let c = config(&[("listeners", "PLAINTEXT://:1,SSL://:1")]).unwrap();
        assert!(c.listeners("x:1", None).is_err(), "one port twice");
        let c = config(&[
            ("listeners", "PLAINTEXT://:1"),
            ("advertised.listeners", "SSL://h:2"),
        ])
        .unwrap();
        assert!(c.listeners("x:1", None).is_err(), "unknown advertised name");
        let c = config(&[("ssl.client.auth", "required")]).unwrap();
        assert!(c.validate("x:1", None, false).is_err(), "no truststore");
        let c = config(&[("listeners", "PLAINTEXT://:1")]).unwrap();
        assert!(c.validate("x:1", None, false).is_ok());
        assert!(
            c.validate("x:1", None, true).is_err(),
            "listen and listeners"
        );
    }
}
