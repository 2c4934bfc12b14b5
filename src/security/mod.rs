//! Authentication: SASL users and their salted credentials (`credentials`), the server
//! side of the SASL mechanisms (`sasl`: PLAIN; `scram`: SCRAM-SHA-256/512), and the TLS
//! configuration of the SSL listeners and its reloading (`tls`), and the principal a client
//! certificate stands for (`certificate`). Pure logic and files: the connections that
//! use them live in `server`.

pub mod acl;
pub mod certificate;
pub mod credentials;
pub mod sasl;
pub mod sasl_client;
pub mod scram;
pub mod tls;
pub mod tls_client;
