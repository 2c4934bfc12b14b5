//! Topic config changes (AlterConfigs, IncrementalAlterConfigs): shard 0 validates them with
//! CreateTopics' rules and persists them (alone) or proposes them to the metadata log (in a
//! cluster); every shard then hands each open log its new settings.

use super::Shard;
use super::logs::MetaView;
use super::messages::{ConfigChange, ConfigEdit, TopicResult};
use super::meta;
use crate::cluster::image::{Command, TopicConfigs};
use crate::config::{FlushMode, topic};
use crate::protocol::code;
use std::collections::BTreeMap;
use std::rc::Rc;

impl Shard {
    /// Shard 0 only: validates, persists (or proposes) and broadcasts topic config changes.
    pub(super) async fn alter_topic_configs(
        self: &Rc<Self>,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    ) -> Vec<TopicResult> {
        debug_assert_eq!(self.id, 0, "metadata has one writer");
        let _writer = self.meta_write.lock().await;
        let mut next = (*self.meta().meta).clone();
        let mut results = Vec::with_capacity(changes.len());
        let mut proposed = Vec::new();
        let mut changed = Vec::new();
        for change in changes {
            let mut result = TopicResult {
                name: change.topic.clone(),
                error_code: code::NONE,
                error_message: None,
                partitions: 0,
                id: String::new(),
            };
            match self.new_overrides(&next, &change) {
                Err((c, m)) => {
                    result.error_code = c;
                    result.error_message = Some(m);
                }
                Ok(_) if validate_only => {}
                Ok(configs) if next.cluster.is_some() => proposed.push(TopicConfigs {
                    name: change.topic.clone(),
                    configs,
                }),
                Ok(configs) => {
                    if let Some(t) = next.topics.get_mut(&change.topic) {
                        t.configs = configs;
                        changed.push(results.len());
                    }
                }
            }
            results.push(result);
        }
        if !proposed.is_empty() {
            let want: BTreeMap<String, BTreeMap<String, String>> = proposed
                .iter()
                .map(|t| (t.name.clone(), t.configs.clone()))
                .collect();
            let cmd = Command::AlterTopicConfigs { topics: proposed };
            self.apply_outcome(cmd, &mut results, |m: &MetaView, n: &str| {
                m.meta.topics.get(n).map(|t| &t.configs) == want.get(n)
            })
            .await;
        }
        if !changed.is_empty()
            && let Err(e) = self.publish(next).await
        {
            tracing::error!("cannot persist topic configs: {e}");
            for i in changed {
                results[i].error_code = code::KAFKA_STORAGE_ERROR;
                results[i].error_message = Some(e.to_string());
            }
        }
        results
    }

    /// The overrides a topic would have after `change`, checked as CreateTopics checks them.
    fn new_overrides(
        &self,
        meta: &meta::Metadata,
        change: &ConfigChange,
    ) -> Result<BTreeMap<String, String>, (i16, String)> {
        let name = &change.topic;
        if meta::is_internal(name) {
            return Err((
                code::INVALID_REQUEST,
                format!("{name} is an internal topic; its configs belong to the broker"),
            ));
        }
        let Some(t) = meta.topics.get(name) else {
            return Err((
                code::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {name} does not exist"),
            ));
        };
        let view = self.meta();
        let defaults = &view.config.log;
        let invalid = |e: crate::config::ConfigError| (code::INVALID_CONFIG, e.to_string());
        let next = match &change.edit {
            ConfigEdit::Replace(all) => all.clone(),
            ConfigEdit::Ops(ops) => topic::apply_ops(defaults, &t.configs, ops).map_err(invalid)?,
        };
        topic::validate(defaults, &next, self.config.socket_request_max_bytes).map_err(invalid)?;
        // An open segment's file mode cannot change under its writer.
        let (was, now) = (
            topic::effective(defaults, &t.configs).io,
            topic::effective(defaults, &next).io,
        );
        if was != now {
            return Err((
                code::INVALID_CONFIG,
                format!("io cannot change on an existing topic ({was} to {now}); recreate it"),
            ));
        }
        Ok(next)
    }

    /// Gives each open log the settings the new metadata computes for its topic. The `io`
    /// mode stays as opened. A log moving to `flush=fsync` is flushed first, so its high
    /// watermark (which `fsync` takes from the synced position) does not step back.
    pub(super) async fn reconfigure_logs(&self, view: &MetaView) {
        let mut stale = Vec::new();
        for (name, parts) in self.table.logs.borrow().iter() {
            let Some(t) = view.topics.get(name) else {
                continue;
            };
            for log in parts.values() {
                let have = log.config();
                let mut want = t.log.clone();
                want.io = have.io;
                if want != have {
                    stale.push((log.clone(), have.flush, want));
                }
            }
        }
        if !stale.is_empty() {
            // A broker default reaches every log without an override: one line, not one
            // per partition.
            tracing::info!(
                "shard {}: {} partition logs take new settings",
                self.id,
                stale.len()
            );
        }
        for (log, flush_was, want) in stale {
            if want.flush == FlushMode::Fsync
                && flush_was != FlushMode::Fsync
                && let Err(e) = log.flush().await
            {
                tracing::warn!("flushing {} before flush=fsync: {e}", log.dir().display());
            }
            tracing::debug!("{}: topic config changed", log.dir().display());
            log.set_config(want);
        }
    }
}
