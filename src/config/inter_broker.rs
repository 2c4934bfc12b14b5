//! How a broker of a cluster reaches the other brokers' Kafka listeners (replica fetches,
//! transaction markers, the transaction coordinator's verification), with Kafka's keys:
//!
//! - `inter.broker.listener.name`: the listener, of every broker, that brokers connect to
//!   (default: the first listener). Its security protocol decides TLS and SASL.
//! - `sasl.mechanism.inter.broker.protocol`: the mechanism brokers log in with on a SASL
//!   listener (default: the first of `sasl.enabled.mechanisms`).
//! - `listener.name.<listener>.<mechanism>.sasl.jaas.config`, else `sasl.jaas.config`: the
//!   login, as Kafka writes it: `...LoginModule required username="broker" password="...";`.
//!   Only `username` and `password` are read.
//!
//! Over TLS a broker checks the other's certificate against `ssl.truststore.location` and,
//! when `ssl.client.auth` asks for one, presents its own (`ssl.keystore.location`).
//!
//! The controller port (`controller.listen`, Raft between the voters) is the listener named
//! by `controller.listener.names` (default `CONTROLLER`); its protocol comes from
//! `listener.security.protocol.map` (PLAINTEXT when the map does not name it). SSL there is
//! mutual TLS: each side presents `ssl.keystore.location` and checks the other's against
//! `ssl.truststore.location`.

use super::parse::{ConfigError, bad};
use super::security::{Listener, Mechanism, SecurityConfig, SecurityProtocol};
use std::collections::BTreeMap;

const JAAS: &str = "sasl.jaas.config";

#[derive(Clone, Default, PartialEq)]
pub struct InterBrokerConfig {
    /// Empty: the first listener.
    pub listener_name: String,
    /// `controller.listener.names`: empty is `CONTROLLER`.
    pub controller_listener: String,
    pub sasl_mechanism: Option<Mechanism>,
    /// JAAS logins by scope: `""` for `sasl.jaas.config`, `listener.mechanism` (both
    /// lower case) for `listener.name.<listener>.<mechanism>.sasl.jaas.config`.
    jaas: BTreeMap<String, String>,
}

impl std::fmt::Debug for InterBrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterBrokerConfig")
            .field("listener_name", &self.listener_name)
            .field("controller_listener", &self.controller_listener)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("jaas", &self.jaas.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A broker's login on another broker's SASL listener.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslLogin {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} login of {}", self.mechanism.name(), self.username)
    }
}

/// The resolved settings: which listener of the other brokers to reach, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterBroker {
    pub listener: String,
    pub protocol: SecurityProtocol,
    pub sasl: Option<SaslLogin>,
}

/// The value of option `name` in a JAAS login line (`name="value"`, or unquoted up to a
/// space or `;`), with `\"` and `\\` unescaped inside quotes.
fn jaas_option(line: &str, name: &str) -> Option<String> {
    let mut rest = line;
    while let Some(at) = rest.find(name) {
        let before_ok = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace());
        let after = rest[at + name.len()..].trim_start();
        rest = &rest[at + name.len()..];
        let Some(value) = after.strip_prefix('=').filter(|_| before_ok) else {
            continue;
        };
        let value = value.trim_start();
        if let Some(quoted) = value.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => return Some(out),
                    '\\' => out.push(chars.next()?),
                    c => out.push(c),
                }
            }
            return None;
        }
        let end = value
            .find(|c: char| c.is_whitespace() || c == ';')
            .unwrap_or(value.len());
        return Some(value[..end].to_string());
    }
    None
}

impl InterBrokerConfig {
    pub const KEYS: &'static [&'static str] = &[
        "inter.broker.listener.name",
        "sasl.mechanism.inter.broker.protocol",
        JAAS,
        "controller.listener.names",
    ];

    /// Sets one of [`Self::KEYS`] or a `listener.name.<l>.<mechanism>.sasl.jaas.config`;
    /// `Ok(false)` when the key is not an inter-broker setting.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "inter.broker.listener.name" => self.listener_name = value.trim().to_string(),
            "controller.listener.names" => {
                let name = value.trim();
                if name.contains(',') {
                    return Err(bad(key, value, "one controller listener is supported"));
                }
                self.controller_listener = name.to_string();
            }
            "sasl.mechanism.inter.broker.protocol" if value.trim().is_empty() => {
                self.sasl_mechanism = None;
            }
            "sasl.mechanism.inter.broker.protocol" => {
                self.sasl_mechanism = Some(
                    Mechanism::parse(value.trim())
                        .ok_or_else(|| bad(key, value, "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))?,
                );
            }
            JAAS if value.trim().is_empty() => {
                self.jaas.remove("");
            }
            JAAS => {
                self.jaas.insert(String::new(), value.to_string());
            }
            _ => {
                let Some(scope) = key
                    .strip_prefix("listener.name.")
                    .and_then(|k| k.strip_suffix(".sasl.jaas.config"))
                else {
                    return Ok(false);
                };
                let Some((listener, mechanism)) = scope.split_once('.') else {
                    return Err(bad(
                        key,
                        "(hidden)",
                        "expected listener.name.L.MECHANISM.sasl.jaas.config",
                    ));
                };
                self.jaas.insert(
                    format!("{}.{}", listener.to_lowercase(), mechanism.to_lowercase()),
                    value.to_string(),
                );
            }
        }
        Ok(true)
    }

    /// Whether the controller port runs mutual TLS (its listener is SSL in the protocol
    /// map) or plain TCP. Fails for another protocol, or SSL without the PEM files.
    pub fn controller_tls(&self, security: &SecurityConfig) -> Result<bool, ConfigError> {
        let name = match self.controller_listener.as_str() {
            "" => "CONTROLLER",
            n => n,
        };
        let protocol = security
            .protocol_map
            .split(',')
            .filter_map(|i| i.trim().split_once(':'))
            .find(|(n, _)| *n == name)
            .map(|(_, p)| {
                SecurityProtocol::parse(p.trim()).ok_or_else(|| {
                    bad(
                        "listener.security.protocol.map",
                        p,
                        "not a security protocol",
                    )
                })
            })
            .transpose()?
            .unwrap_or(SecurityProtocol::Plaintext);
        match protocol {
            SecurityProtocol::Plaintext => Ok(false),
            SecurityProtocol::Ssl
                if security.ssl_keystore_location.is_some()
                    && security.ssl_truststore_location.is_some() =>
            {
                Ok(true)
            }
            SecurityProtocol::Ssl => Err(bad(
                "controller.listener.names",
                name,
                "an SSL controller listener needs ssl.keystore.location and ssl.truststore.location",
            )),
            other => Err(bad(
                "controller.listener.names",
                name,
                &format!(
                    "{} is not supported on the controller port (PLAINTEXT or SSL)",
                    other.name()
                ),
            )),
        }
    }

    /// The inter-broker listener of `listeners` and the login for it. Fails when the named
    /// listener does not exist, or a SASL one has no usable login.
    pub fn resolve(
        &self,
        listeners: &[Listener],
        security: &SecurityConfig,
    ) -> Result<InterBroker, ConfigError> {
        let key = "inter.broker.listener.name";
        let listener = match self.listener_name.as_str() {
            "" => listeners.first(),
            name => listeners.iter().find(|l| l.name == name),
        }
        .ok_or_else(|| bad(key, &self.listener_name, "no listener of that name"))?;
        if listener.protocol.tls() && security.ssl_truststore_location.is_none() {
            return Err(bad(
                "ssl.truststore.location",
                "",
                "an SSL inter-broker listener needs the CA certificates to check brokers against",
            ));
        }
        let sasl = if listener.protocol.sasl() {
            let mechanism = self
                .sasl_mechanism
                .or_else(|| security.sasl_enabled_mechanisms.first().copied())
                .ok_or_else(|| bad("sasl.mechanism.inter.broker.protocol", "", "not set"))?;
            let scoped = format!(
                "{}.{}",
                listener.name.to_lowercase(),
                mechanism.name().to_lowercase()
            );
            let line = self
                .jaas
                .get(&scoped)
                .or_else(|| self.jaas.get(""))
                .ok_or_else(|| {
                    bad(
                        JAAS,
                        "",
                        &format!(
                            "the SASL inter-broker listener {} needs a login (listener.name.{scoped}.sasl.jaas.config)",
                            listener.name
                        ),
                    )
                })?;
            let (Some(username), Some(password)) =
                (jaas_option(line, "username"), jaas_option(line, "password"))
            else {
                return Err(bad(
                    JAAS,
                    "(hidden)",
                    "needs username=\"...\" and password=\"...\"",
                ));
            };
            Some(SaslLogin {
                mechanism,
                username,
                password,
            })
        } else {
            None
        };
        Ok(InterBroker {
            listener: listener.name.clone(),
            protocol: listener.protocol,
            sasl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(security: &SecurityConfig) -> Vec<Listener> {
        security
            .listeners("127.0.0.1:9092", None)
            .expect("listeners")
    }

    #[test]
    fn jaas_options_are_read_quoted_or_not() {
        let line = r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="p\"w d";"#;
        assert_eq!(jaas_option(line, "username").as_deref(), Some("broker"));
        assert_eq!(jaas_option(line, "password").as_deref(), Some("p\"w d"));
        assert_eq!(
            jaas_option("M required username=bob password=x;", "password").as_deref(),
            Some("x")
        );
        // `user_password=` (a Kafka server-side user list) is not `password=`.
        assert_eq!(
            jaas_option("M required user_password=\"y\";", "password"),
            None
        );
        assert_eq!(jaas_option("M required password=\"open", "password"), None);
    }

    #[test]
    fn the_listener_and_login_are_resolved() {
        let mut s = SecurityConfig::default();
        assert!(
            s.set("listeners", "CLIENT://127.0.0.1:1,BROKER://127.0.0.1:2")
                .unwrap()
        );
        assert!(
            s.set(
                "listener.security.protocol.map",
                "CLIENT:PLAINTEXT,BROKER:SASL_PLAINTEXT"
            )
            .unwrap()
        );
        let mut c = InterBrokerConfig::default();
        // The first listener by default: plain, no login.
        let r = c.resolve(&listeners(&s), &s).unwrap();
        assert_eq!((r.listener.as_str(), r.sasl.is_none()), ("CLIENT", true));
        assert!(c.set("inter.broker.listener.name", "BROKER").unwrap());
        assert!(
            c.resolve(&listeners(&s), &s).is_err(),
            "SASL without a login"
        );
        assert!(
            c.set("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-256")
                .unwrap()
        );
        assert!(
            c.set(
                "listener.name.broker.scram-sha-256.sasl.jaas.config",
                r#"x required username="b" password="s";"#
            )
            .unwrap()
        );
        let r = c.resolve(&listeners(&s), &s).unwrap();
        let login = r.sasl.expect("login");
        assert_eq!(login.mechanism, Mechanism::ScramSha256);
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("b", "s")
        );
        assert!(
            !format!("{c:?}{login:?}").contains("\"s\""),
            "no password in Debug"
        );
        assert!(c.set("inter.broker.listener.name", "NOPE").unwrap());
        assert!(c.resolve(&listeners(&s), &s).is_err());
        assert!(!c.set("other.key", "1").unwrap());
        assert!(
            c.set("sasl.mechanism.inter.broker.protocol", "GSSAPI")
                .is_err()
        );
    }
}
