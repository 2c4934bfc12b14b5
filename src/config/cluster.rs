//! Cluster settings, with Kafka's (KRaft) names. With `node.id` unset the broker runs alone,
//! exactly as a single-node broker always has.

use super::parse::{ConfigError, bad, parse_num, parse_positive};

/// One voter of the controller quorum: `ID@HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// This broker's id in the cluster; `None` runs the broker alone.
    pub node_id: Option<i32>,
    /// The controller quorum (Kafka's `controller.quorum.voters`); every voter is also a
    /// broker (combined mode).
    pub voters: Vec<Voter>,
    /// Where this node listens for controller traffic; empty takes its own voter entry.
    pub controller_listen: String,
    /// Replicas of an auto-created topic, or of one created with replication factor -1.
    pub default_replication_factor: i16,
    /// Replicas of `__consumer_offsets` (fewer when fewer brokers are alive at creation).
    pub offsets_topic_replication_factor: i16,
    /// A broker the controller has not heard from for this long is fenced: its partitions
    /// get new leaders.
    pub broker_session_timeout_ms: u64,
    /// How often a broker tells the controller it is alive.
    pub broker_heartbeat_interval_ms: u64,
    /// A follower that has not caught up with its leader for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// How long a follower's fetch waits at the leader for new data.
    pub replica_fetch_wait_max_ms: u64,
    /// Bytes a follower's fetch asks for per partition (at least one batch comes back).
    pub replica_fetch_max_bytes: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: None,
            voters: Vec::new(),
            controller_listen: String::new(),
            default_replication_factor: 1,
            offsets_topic_replication_factor: 3,
            broker_session_timeout_ms: 9_000,
            broker_heartbeat_interval_ms: 2_000,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1024 * 1024,
        }
    }
}

impl ClusterConfig {
    pub const KEYS: &'static [&'static str] = &[
        "node.id",
        "controller.quorum.voters",
        "controller.listen",
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "broker.session.timeout.ms",
        "broker.heartbeat.interval.ms",
        "replica.lag.time.max.ms",
        "replica.fetch.wait.max.ms",
        "replica.fetch.max.bytes",
    ];

    /// Sets one of [`Self::KEYS`]; `Ok(false)` when the key is not a cluster setting.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "node.id" => {
                if value.is_empty() || value == "-1" {
                    self.node_id = None;
                } else {
                    let id: i32 = parse_num(key, value)?;
                    if id < 0 {
                        return Err(bad(key, value, "must be 0 or more (or -1 for none)"));
                    }
                    self.node_id = Some(id);
                }
            }
            "controller.quorum.voters" => self.voters = parse_voters(key, value)?,
            "controller.listen" => self.controller_listen = value.to_string(),
            "default.replication.factor" => {
                self.default_replication_factor = replication_factor(key, value)?
            }
            "offsets.topic.replication.factor" => {
                self.offsets_topic_replication_factor = replication_factor(key, value)?
            }
            "broker.session.timeout.ms" => {
                self.broker_session_timeout_ms = parse_positive(key, value)?
            }
            "broker.heartbeat.interval.ms" => {
                self.broker_heartbeat_interval_ms = parse_positive(key, value)?
            }
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms = parse_positive(key, value)?,
            "replica.fetch.wait.max.ms" => {
                self.replica_fetch_wait_max_ms = parse_positive(key, value)?
            }
            "replica.fetch.max.bytes" => self.replica_fetch_max_bytes = parse_positive(key, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Settings that must agree with each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Some(id) = self.node_id else {
            return Ok(());
        };
        let voters = "controller.quorum.voters";
        if self.voters.is_empty() {
            return Err(bad(voters, "", "node.id is set: name the quorum's voters"));
        }
        if !self.voters.iter().any(|v| v.id == id) {
            return Err(bad(
                voters,
                &format!("{:?}", self.voters.iter().map(|v| v.id).collect::<Vec<_>>()),
                &format!("node.id {id} must be one of the voters (combined mode)"),
            ));
        }
        if self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms {
            return Err(bad(
                "broker.heartbeat.interval.ms",
                &self.broker_heartbeat_interval_ms.to_string(),
                "must be less than broker.session.timeout.ms",
            ));
        }
        Ok(())
    }

    /// The address this node's controller listens on.
    pub fn controller_listen_addr(&self) -> Option<String> {
        if !self.controller_listen.is_empty() {
            return Some(self.controller_listen.clone());
        }
        let id = self.node_id?;
        self.voters.iter().find(|v| v.id == id).map(Voter::addr)
    }
}

fn replication_factor(key: &str, value: &str) -> Result<i16, ConfigError> {
    let v: i16 = parse_num(key, value)?;
    if v < 1 {
        return Err(bad(key, value, "must be at least 1"));
    }
    Ok(v)
}

/// `1@host:port,2@host:port`: distinct ids, each with a host and a port.
fn parse_voters(key: &str, value: &str) -> Result<Vec<Voter>, ConfigError> {
    let mut out: Vec<Voter> = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('@')
            .ok_or_else(|| bad(key, value, &format!("{part:?} is not ID@HOST:PORT")))?;
        let id: i32 = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| bad(key, value, &format!("{id:?} is not a node id")))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad(key, value, &format!("{addr:?} is not HOST:PORT")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad(key, value, &format!("{port:?} is not a port")))?;
        if host.is_empty() {
            return Err(bad(key, value, &format!("{part:?} has no host")));
        }
        if out.iter().any(|v| v.id == id) {
            return Err(bad(key, value, &format!("node {id} is named twice")));
        }
        out.push(Voter {
            id,
            host: host.to_string(),
            port,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_and_bad_ones_are_refused() {
        let mut c = ClusterConfig::default();
        c.set(
            "controller.quorum.voters",
            "1@127.0.0.1:9093, 2@localhost:9094",
        )
        .unwrap();
        assert_eq!(c.voters.len(), 2);
        assert_eq!(c.voters[1].addr(), "localhost:9094");
        for bad in ["1@x", "a@h:1", "1@h:1,1@h:2", "1@:5", "-2@h:1", "1h:1"] {
            assert!(c.set("controller.quorum.voters", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_node_must_be_a_voter() {
        let mut c = ClusterConfig::default();
        c.validate().unwrap();
        c.set("node.id", "3").unwrap();
        assert!(c.validate().is_err());
        c.set("controller.quorum.voters", "1@h:1,2@h:2").unwrap();
        assert!(c.validate().is_err());
        c.set("controller.quorum.voters", "1@h:1,3@h:3").unwrap();
        c.validate().unwrap();
        assert_eq!(c.controller_listen_addr().as_deref(), Some("h:3"));
        c.set("node.id", "-1").unwrap();
        assert_eq!(c.node_id, None);
    }
}
