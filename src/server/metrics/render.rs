//! Renders the shards' snapshots in the Prometheus text exposition format (0.0.4) with
//! `prometheus-client`'s encoder: a collector over the gathered numbers, so nothing is
//! registered or kept between scrapes.

use crate::shard::metrics::ShardSnapshot;
use crate::stats::HistogramSnapshot;
use kafka_protocol::messages::ApiKey;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::fmt;

/// The `Content-Type` of what [`render`] returns.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// The exposition text of every shard's numbers.
pub fn render(shards: Vec<ShardSnapshot>) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshots(shards)));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct Snapshots(Vec<ShardSnapshot>);

fn gauge_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(api) => format!("{api:?}"),
        Err(_) => key.to_string(),
    }
}

/// One metric family: its descriptor, then one sample per label set.
struct Family<'a> {
    m: MetricEncoder<'a>,
}

fn family<'a>(
    enc: &'a mut DescriptorEncoder,
    name: &'a str,
    help: &str,
    ty: MetricType,
) -> Result<Family<'a>, fmt::Error> {
    Ok(Family {
        m: enc.encode_descriptor(name, help, None, ty)?,
    })
}

impl Family<'_> {
    fn counter(&mut self, labels: &Labels, v: u64) -> fmt::Result {
        self.m
            .encode_family(labels)?
            .encode_counter::<NoLabelSet, u64, u64>(&v, None::<&Exemplar<NoLabelSet, u64>>)
    }

    fn gauge(&mut self, labels: &Labels, v: i64) -> fmt::Result {
        self.m.encode_family(labels)?.encode_gauge(&v)
    }

    /// A histogram whose values are scaled by `scale` (1e6: microseconds to seconds).
    fn histogram(&mut self, labels: &Labels, h: &HistogramSnapshot, scale: f64) -> fmt::Result {
        let (sum, buckets) = h.buckets(scale);
        self.m
            .encode_family(labels)?
            .encode_histogram::<NoLabelSet>(
                sum,
                h.count(),
                &buckets,
                None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
            )
    }
}

fn shard_label(s: &ShardSnapshot) -> Labels {
    vec![("shard", s.shard.to_string())]
}

impl Snapshots {
    fn partitions(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        type Get = fn(&crate::shard::metrics::PartitionSnapshot) -> i64;
        let counters: [(&str, &str, Get); 8] = [
            (
                "ringbroker_partition_in_bytes",
                "Record bytes appended to the partition (produce).",
                |p| gauge_of(p.bytes_in),
            ),
            (
                "ringbroker_partition_in_records",
                "Records appended to the partition (produce).",
                |p| gauge_of(p.records_in),
            ),
            (
                "ringbroker_partition_out_bytes",
                "Record bytes read from the partition (fetch).",
                |p| gauge_of(p.bytes_out),
            ),
            (
                "ringbroker_partition_out_records",
                "Records in the batches read from the partition (fetch).",
                |p| gauge_of(p.records_out),
            ),
            (
                "ringbroker_partition_cleaner_runs",
                "Cleaner runs that rewrote the partition's log (compaction).",
                |p| gauge_of(p.cleaner_runs),
            ),
            (
                "ringbroker_partition_cleaner_read_bytes",
                "Bytes the cleaner read from the partition's log.",
                |p| gauge_of(p.cleaner_bytes_read),
            ),
            (
                "ringbroker_partition_cleaner_written_bytes",
                "Bytes the cleaner wrote for the partition's log.",
                |p| gauge_of(p.cleaner_bytes_written),
            ),
            (
                "ringbroker_partition_cleaner_removed_records",
                "Records compaction removed from the partition's log.",
                |p| gauge_of(p.cleaner_records_removed),
            ),
        ];
        let gauges: [(&str, &str, Get); 5] = [
            (
                "ringbroker_partition_log_size_bytes",
                "Bytes in the partition's segments.",
                |p| gauge_of(p.size_bytes),
            ),
            (
                "ringbroker_partition_segments",
                "Segments of the partition's log.",
                |p| gauge_of(p.segments),
            ),
            (
                "ringbroker_partition_log_start_offset",
                "The partition's log start offset.",
                |p| p.log_start_offset,
            ),
            (
                "ringbroker_partition_log_end_offset",
                "The offset the partition's next record gets.",
                |p| p.log_end_offset,
            ),
            (
                "ringbroker_partition_high_watermark",
                "The offset after the last record consumers may read.",
                |p| p.high_watermark,
            ),
        ];
        let labels = |s: &ShardSnapshot, p: &crate::shard::metrics::PartitionSnapshot| -> Labels {
            vec![
                ("topic", p.topic.clone()),
                ("partition", p.partition.to_string()),
                ("shard", s.shard.to_string()),
            ]
        };
        for (name, help, get) in counters {
            let mut f = family(enc, name, help, MetricType::Counter)?;
            for s in &self.0 {
                for p in &s.partitions {
                    f.counter(&labels(s, p), u64::try_from(get(p)).unwrap_or(0))?;
                }
            }
        }
        for (name, help, get) in gauges {
            let mut f = family(enc, name, help, MetricType::Gauge)?;
            for s in &self.0 {
                for p in &s.partitions {
                    f.gauge(&labels(s, p), get(p))?;
                }
            }
        }
        Ok(())
    }

    fn storage(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let merged = |s: &ShardSnapshot, pick: fn(&_) -> &HistogramSnapshot| {
            let mut m = HistogramSnapshot::default();
            for p in &s.partitions {
                m.merge(pick(p));
            }
            m
        };
        let mut f = family(
            enc,
            "ringbroker_fdatasyncs",
            "fdatasync calls of the partition logs' writers.",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            f.counter(&shard_label(s), merged(s, |p| &p.sync_us).count())?;
        }
        let mut f = family(
            enc,
            "ringbroker_fdatasync_duration_seconds",
            "Latency of the partition logs' fdatasyncs.",
            MetricType::Histogram,
        )?;
        for s in &self.0 {
            f.histogram(&shard_label(s), &merged(s, |p| &p.sync_us), 1e6)?;
        }
        let mut f = family(
            enc,
            "ringbroker_group_commit_appends",
            "Appends carried by one gathered write of a log's writer (group commit).",
            MetricType::Histogram,
        )?;
        for s in &self.0 {
            f.histogram(&shard_label(s), &merged(s, |p| &p.write_batch), 1.0)?;
        }
        Ok(())
    }

    fn requests(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let api_labels = |s: &ShardSnapshot, key: i16| -> Labels {
            vec![("api", api_name(key)), ("shard", s.shard.to_string())]
        };
        let mut f = family(
            enc,
            "ringbroker_requests",
            "Kafka requests handled, by API.",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            for a in &s.apis {
                f.counter(&api_labels(s, a.key), a.requests)?;
            }
        }
        let mut f = family(
            enc,
            "ringbroker_request_failures",
            "Requests that could not be answered (the connection was closed), by reason.",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            for a in &s.apis {
                for (reason, n) in &a.failures {
                    let mut l = api_labels(s, a.key);
                    l.push(("reason", reason.to_string()));
                    f.counter(&l, *n)?;
                }
            }
        }
        let mut f = family(
            enc,
            "ringbroker_request_duration_seconds",
            "Time from a request's frame to its answer, by API.",
            MetricType::Histogram,
        )?;
        for s in &self.0 {
            for a in &s.apis {
                f.histogram(&api_labels(s, a.key), &a.latency_us, 1e6)?;
            }
        }
        let mut f = family(
            enc,
            "ringbroker_partition_errors",
            "Partitions answered with a Kafka error code, by API and code.",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            for (api, code, n) in &s.partition_errors {
                let mut l = api_labels(s, *api);
                l.push(("code", code.to_string()));
                f.counter(&l, *n)?;
            }
        }
        Ok(())
    }

    fn network(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let mut f = family(
            enc,
            "ringbroker_sent_bytes",
            "Bytes sent to clients by path: sendfile (zero-copy), writev (memory), fallback (copied).",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            for (path, v) in [
                ("sendfile", s.sendfile_bytes),
                ("writev", s.writev_bytes),
                ("fallback", s.fallback_bytes),
            ] {
                let mut l = shard_label(s);
                l.push(("path", path.to_string()));
                f.counter(&l, v)?;
            }
        }
        let mut f = family(
            enc,
            "ringbroker_batch_cache_bytes",
            "Record bytes of io=direct logs fetched from the batch cache (hit) or files (miss).",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            for (result, v) in [("hit", s.cache_hit_bytes), ("miss", s.cache_miss_bytes)] {
                let mut l = shard_label(s);
                l.push(("result", result.to_string()));
                f.counter(&l, v)?;
            }
        }
        let mut f = family(
            enc,
            "ringbroker_cold_read_bytes",
            "File bytes not in the page cache, read into it on the blocking thread pool before they were sent.",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            f.counter(&shard_label(s), s.cold_fill_bytes)?;
        }
        let mut f = family(
            enc,
            "ringbroker_reactor_blocking_file_calls",
            "Blocking file calls made on the shard's reactor thread instead of the blocking thread pool.",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            f.counter(&shard_label(s), s.reactor_blocking_calls)?;
        }
        let mut f = family(
            enc,
            "ringbroker_deleted_files_released",
            "Deleted segment files whose last close, which frees their blocks, was made on the blocking thread pool.",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            f.counter(&shard_label(s), s.deleted_files_released)?;
        }
        let mut f = family(
            enc,
            "ringbroker_connections",
            "Open client connections.",
            MetricType::Gauge,
        )?;
        for s in &self.0 {
            f.gauge(&shard_label(s), gauge_of(s.connections_open))?;
        }
        let mut f = family(
            enc,
            "ringbroker_produce_in_flight",
            "Produce requests on this shard's partitions not answered yet (the produce queue).",
            MetricType::Gauge,
        )?;
        for s in &self.0 {
            f.gauge(&shard_label(s), gauge_of(s.produce_in_flight))?;
        }
        let mut f = family(
            enc,
            "ringbroker_fetch_waiting",
            "Long-poll fetches parked on this shard's partitions (the fetch queue).",
            MetricType::Gauge,
        )?;
        for s in &self.0 {
            f.gauge(&shard_label(s), gauge_of(s.fetch_waiting))?;
        }
        let mut f = family(
            enc,
            "ringbroker_fetch_sessions",
            "Incremental fetch sessions (KIP-227) held for the connections of this shard.",
            MetricType::Gauge,
        )?;
        for s in &self.0 {
            f.gauge(&shard_label(s), gauge_of(s.fetch_sessions))?;
        }
        let mut f = family(
            enc,
            "ringbroker_fetch_session_evictions",
            "Fetch sessions evicted to make room for new ones.",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            f.counter(&shard_label(s), s.fetch_session_evictions)?;
        }
        let mut f = family(
            enc,
            "ringbroker_connections_accepted",
            "Client connections accepted.",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            f.counter(&shard_label(s), s.connections_accepted)?;
        }
        let mut f = family(
            enc,
            "ringbroker_mesh_requests",
            "Requests one shard sent another over the mesh.",
            MetricType::Counter,
        )?;
        for s in &self.0 {
            for (to, n) in s.mesh_sent.iter().enumerate() {
                if to != s.shard {
                    let l = vec![("from", s.shard.to_string()), ("to", to.to_string())];
                    f.counter(&l, *n)?;
                }
            }
        }
        Ok(())
    }

    /// Committed offsets and lag (high watermark minus committed) per group partition.
    fn groups(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let hw: HashMap<(&str, i32), i64> = self
            .0
            .iter()
            .flat_map(|s| &s.partitions)
            .map(|p| ((p.topic.as_str(), p.partition), p.high_watermark))
            .collect();
        let labels = |g: &str, t: &str, p: i32| -> Labels {
            vec![
                ("group", g.to_string()),
                ("topic", t.to_string()),
                ("partition", p.to_string()),
            ]
        };
        let mut f = family(
            enc,
            "ringbroker_group_committed_offset",
            "A consumer group's committed offset of a partition.",
            MetricType::Gauge,
        )?;
        for s in &self.0 {
            for (g, t, p, off) in &s.committed {
                f.gauge(&labels(g, t, *p), *off)?;
            }
        }
        let mut f = family(
            enc,
            "ringbroker_group_lag",
            "Records between a group's committed offset and the partition's high watermark.",
            MetricType::Gauge,
        )?;
        for s in &self.0 {
            for (g, t, p, off) in &s.committed {
                if let Some(hw) = hw.get(&(t.as_str(), *p)) {
                    f.gauge(&labels(g, t, *p), hw.saturating_sub(*off).max(0))?;
                }
            }
        }
        Ok(())
    }

    fn cluster(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let Some(c) = self.0.iter().find_map(|s| s.cluster.clone()) else {
            return Ok(());
        };
        let l = vec![("node", c.node.to_string())];
        for (name, help, v) in [
            (
                "ringbroker_cluster_controller",
                "1 when this broker's node leads the controller quorum.",
                i64::from(c.is_controller),
            ),
            (
                "ringbroker_cluster_fenced",
                "1 when the controller counts this broker fenced.",
                i64::from(c.fenced),
            ),
            (
                "ringbroker_cluster_lease",
                "1 while this broker may answer as leader.",
                i64::from(c.lease),
            ),
            (
                "ringbroker_cluster_leader_partitions",
                "Partitions the metadata names this broker leader of.",
                gauge_of(c.leaders),
            ),
        ] {
            family(enc, name, help, MetricType::Gauge)?.gauge(&l, v)?;
        }
        Ok(())
    }
}

impl Collector for Snapshots {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        self.partitions(&mut enc)?;
        self.storage(&mut enc)?;
        self.requests(&mut enc)?;
        self.network(&mut enc)?;
        self.groups(&mut enc)?;
        self.cluster(&mut enc)
    }
}
