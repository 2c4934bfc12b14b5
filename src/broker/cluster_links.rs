//! What a broker of a cluster needs before its shards start: the listeners it registers,
//! how it reaches the other brokers' inter-broker listener (TLS, SASL login), and the
//! mutual TLS of the controller port. Everything is checked here, so a bad address,
//! truststore or login stops the start with the key named.

use crate::cluster::image::Endpoint;
use crate::cluster::transport::PeerTls;
use crate::config::BrokerConfig;
use crate::config::security::{ClientAuth, Listener};
use crate::shard::replica::InterBrokerClient;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) struct ClusterLinks {
    /// This broker's listeners as it registers them, the first where clients reach it.
    pub endpoints: Vec<Endpoint>,
    pub inter_broker: Arc<InterBrokerClient>,
    /// Set when the controller listener is SSL.
    pub controller_tls: Option<PeerTls>,
}

/// Where a broker of a cluster registers `listener` for clients and the other brokers:
/// its advertised address, else its bind address, which must then name a host they can
/// reach.
fn cluster_endpoint(listener: &Listener, node: i32) -> anyhow::Result<Endpoint> {
    let addr = listener.advertised.as_deref().unwrap_or(&listener.bind);
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("{addr} is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("{addr} has no valid port"))?;
    if matches!(host, "0.0.0.0" | "::" | "[::]" | "") {
        bail!(
            "node {node}: listener {} at {addr} cannot be reached; set `advertised` (with \
             `listeners`: `advertised.listeners`), or listen on a specific address, in a cluster",
            listener.name
        );
    }
    Ok(Endpoint {
        name: listener.name.clone(),
        host: host.to_string(),
        port,
    })
}

/// The links of a broker of a cluster (`None` for a broker alone).
pub(super) fn prepare(
    config: &BrokerConfig,
    listeners: &[(Listener, SocketAddr)],
) -> anyhow::Result<Option<ClusterLinks>> {
    let Some(node) = config.cluster.node_id else {
        return Ok(None);
    };
    let endpoints = listeners
        .iter()
        .map(|(l, _)| cluster_endpoint(l, node))
        .collect::<anyhow::Result<Vec<Endpoint>>>()?;
    let link = config.inter_broker_link()?;
    let tls = if link.protocol.tls() {
        Some(crate::security::tls_client::client_config(
            &config.security,
            false,
        )?)
    } else {
        None
    };
    let controller_tls = if config.inter_broker.controller_tls(&config.security)? {
        Some(PeerTls {
            server: crate::security::tls::server_config_with(
                &config.security,
                ClientAuth::Required,
            )?,
            client: crate::security::tls_client::client_config(&config.security, true)?,
        })
    } else {
        None
    };
    if config.log.unclean_leader_election {
        tracing::warn!(
            "unclean.leader.election.enable=true in this broker's configuration decides nothing \
             in a cluster (elections are the metadata's): set it per topic, or cluster-wide with \
             AlterConfigs of the default broker resource"
        );
    }
    Ok(Some(ClusterLinks {
        endpoints,
        inter_broker: Arc::new(InterBrokerClient { link, tls }),
        controller_tls,
    }))
}
