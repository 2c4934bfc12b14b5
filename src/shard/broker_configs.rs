//! Dynamic broker config changes (AlterConfigs, IncrementalAlterConfigs of BROKER
//! resources): shard 0 checks them (`config::dynamic`), persists them with the metadata
//! (alone) or commits them to the metadata log (in a cluster, where every broker applies
//! them); every shard then recomputes its topics' log settings from the new defaults and
//! hands open logs the ones that changed (`reconfigure_logs`).

use super::Shard;
use super::messages::{BrokerConfigChange, ConfigEdit};
use crate::cluster::image::Command;
use crate::config::dynamic::{self, DynamicBrokerConfigs};
use crate::protocol::code;
use std::collections::BTreeMap;
use std::rc::Rc;

impl Shard {
    /// Shard 0 only: validates and persists (or proposes) each change, in order; answers
    /// each with an error code and message.
    pub(super) async fn alter_broker_configs(
        self: &Rc<Self>,
        changes: Vec<BrokerConfigChange>,
        validate_only: bool,
    ) -> Vec<(i16, Option<String>)> {
        debug_assert_eq!(self.id, 0, "metadata has one writer");
        let _writer = self.meta_write.lock().await;
        let mut next = (*self.meta().meta).clone();
        let in_cluster = next.cluster.is_some();
        let mut results = Vec::with_capacity(changes.len());
        let mut changed = Vec::new();
        for change in changes {
            let configs = match self.new_broker_overrides(&next.broker_configs, &change) {
                Ok(c) => c,
                Err(e) => {
                    results.push((code::INVALID_CONFIG, Some(e.to_string())));
                    continue;
                }
            };
            if validate_only {
                results.push((code::NONE, None));
            } else if in_cluster {
                results.push(self.propose_broker_configs(change.broker, configs).await);
            } else {
                next.broker_configs.set(change.broker, configs);
                changed.push(results.len());
                results.push((code::NONE, None));
            }
        }
        if !changed.is_empty()
            && let Err(e) = self.publish(next).await
        {
            tracing::error!("cannot persist dynamic broker configs: {e}");
            for i in changed {
                if let Some(r) = results.get_mut(i) {
                    *r = (code::KAFKA_STORAGE_ERROR, Some(e.to_string()));
                }
            }
        }
        results
    }

    /// The overrides of the changed resource after `change`, validated on the layers below
    /// it (the static configuration; for one broker, also the cluster-wide overrides).
    fn new_broker_overrides(
        &self,
        now: &DynamicBrokerConfigs,
        change: &BrokerConfigChange,
    ) -> Result<BTreeMap<String, String>, crate::config::ConfigError> {
        let current = now.of(change.broker).cloned().unwrap_or_default();
        let node = change.broker.unwrap_or_else(|| self.meta().node_id());
        let next = match &change.edit {
            ConfigEdit::Replace(all) => all.clone(),
            ConfigEdit::Ops(ops) => {
                dynamic::apply_ops(&now.effective(&self.config, node), &current, ops)?
            }
        };
        let below = match change.broker {
            None => (*self.config).clone(),
            Some(id) => DynamicBrokerConfigs {
                default: now.default.clone(),
                brokers: BTreeMap::new(),
            }
            .effective(&self.config, id),
        };
        dynamic::validate(&below, &next)?;
        Ok(next)
    }

    /// In a cluster: commits the change to the metadata log and waits (briefly) until this
    /// broker's shards have it, so the client reads back what it wrote.
    async fn propose_broker_configs(
        self: &Rc<Self>,
        broker: Option<i32>,
        configs: BTreeMap<String, String>,
    ) -> (i16, Option<String>) {
        let want = configs.clone();
        if let Err(e) = self
            .propose(Command::AlterBrokerConfigs { broker, configs })
            .await
        {
            return (e.code(), Some(e.to_string()));
        }
        let empty = BTreeMap::new();
        for _ in 0..200 {
            let view = self.meta();
            if view.meta.broker_configs.of(broker).unwrap_or(&empty) == &want {
                break;
            }
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        }
        (code::NONE, None)
    }
}
