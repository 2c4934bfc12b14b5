//! `ringbroker-bench sweep`: runs a matrix of settings and renders the comparison.
//!
//! For ringbroker, every broker setting (an io x flush pair) gets a fresh broker process on
//! a fresh data directory; client settings (codec, batch size, acks) vary around a base.
//! Each setting runs at every offered rate, which gives one throughput/latency curve per
//! setting. The machine's limits are measured in the same run and every result is also
//! given as a ratio to them. Against another broker (`--bootstrap`, optionally started by
//! `--peer`), only the client settings are swept.

use crate::args::{Acks, BenchArgs, Compression, KeyDistribution, SweepArgs};
use crate::hardware::Machine;
use crate::limits::{self, Limits};
use crate::process::{free_port, spawn_in_group, wait_listening};
use crate::render::{markdown, write_plots};
use crate::report::{Results, write_json};
use crate::sweep_report::{Point, Ratios, SweepReport};
use anyhow::Context as _;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One setting of the matrix.
#[derive(Clone, Debug, Serialize)]
struct Setting {
    label: String,
    /// (io, flush) for ringbroker, `None` for an external broker.
    pair: Option<(String, String)>,
    codec: Compression,
    batch_size: usize,
    acks: Acks,
}

fn settings(args: &SweepArgs) -> anyhow::Result<Vec<Setting>> {
    let codec = *args.codecs.first().context("--codecs is empty")?;
    let batch = *args.batch_sizes.first().context("--batch-sizes is empty")?;
    let acks = *args.acks.first().context("--acks is empty")?;
    let pairs: Vec<Option<(String, String)>> = if args.bootstrap.is_some() {
        vec![None]
    } else {
        args.pairs
            .iter()
            .map(|p| {
                p.split_once(':')
                    .map(|(io, flush)| Some((io.to_string(), flush.to_string())))
                    .with_context(|| format!("--pairs wants io:flush, got {p:?}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let name = |pair: &Option<(String, String)>| match pair {
        Some((io, flush)) => format!("{io}/{flush}"),
        None => args.peer_name.clone(),
    };
    let base_pair = pairs.first().cloned().context("--pairs is empty")?;
    let mut out: Vec<Setting> = pairs
        .iter()
        .map(|pair| Setting {
            label: name(pair),
            pair: pair.clone(),
            codec,
            batch_size: batch,
            acks,
        })
        .collect();
    let base = |label: String| Setting {
        label,
        pair: base_pair.clone(),
        codec,
        batch_size: batch,
        acks,
    };
    for &c in args.codecs.iter().skip(1) {
        out.push(Setting {
            codec: c,
            ..base(format!("{} {}", name(&base_pair), c.name()))
        });
    }
    for &b in args.batch_sizes.iter().skip(1) {
        out.push(Setting {
            batch_size: b,
            ..base(format!("{} batch={b}", name(&base_pair)))
        });
    }
    for &a in args.acks.iter().skip(1) {
        out.push(Setting {
            acks: a,
            ..base(format!("{} acks={}", name(&base_pair), a.name()))
        });
    }
    Ok(out)
}

/// Today's UTC date as YYYY-MM-DD (civil-from-days, no date crate needed).
pub fn utc_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

pub fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let settings = settings(args)?;
    // A ringbroker is started per setting unless another broker is benched (--bootstrap).
    let bin = match (&args.broker_bin, &args.bootstrap) {
        (Some(b), _) => Some(b.clone()),
        (None, None) => Some(default_broker_bin()?),
        (None, Some(_)) => None,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("perf/results").join(utc_date()));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let data_root = args.data_root.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ringbroker-sweep-{}", std::process::id()))
    });
    std::fs::create_dir_all(&data_root)?;
    let machine = Machine::detect();
    eprintln!(
        "sweep: {} settings x {} rates on {}",
        settings.len(),
        args.rates.len(),
        machine.describe()
    );

    let limits = (!args.no_limits).then(|| {
        eprintln!("sweep: measuring machine limits in {}", data_root.display());
        let l = limits::measure(&data_root, args.limits_s);
        eprintln!(
            "sweep: loopback TCP {:.0} MB/s, disk write {:.0} MB/s, fdatasync p50 {:.3} ms",
            l.tcp_loopback_mb_s, l.disk_write_mb_s, l.fdatasync_ms_p50
        );
        l
    });

    // An external broker, started once by --peer if given.
    let _peer = match (&args.peer, &args.bootstrap) {
        (Some(cmd), Some(addr)) => {
            let mut c = Command::new("sh");
            c.args(["-c", cmd]).stdout(Stdio::null());
            let mut p = spawn_in_group(c)?;
            wait_listening(addr, &mut p, Duration::from_secs(60))?;
            Some(p)
        }
        _ => None,
    };

    let mut points = Vec::new();
    for (n, setting) in settings.iter().enumerate() {
        let (broker, bootstrap, _process, config) = match (&setting.pair, &args.bootstrap) {
            (None, Some(addr)) => (args.peer_name.clone(), addr.clone(), None, BTreeMap::new()),
            (Some((io, flush)), _) => {
                let dir = data_root.join(format!("broker-{n}"));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)?;
                let addr = format!("127.0.0.1:{}", free_port()?);
                let mut config = BTreeMap::from([
                    ("log.io".to_string(), io.clone()),
                    ("log.flush".to_string(), flush.clone()),
                    ("shards".to_string(), args.shards.to_string()),
                ]);
                let bin = bin.as_deref().context("no ringbroker binary")?;
                let mut c = Command::new(bin);
                c.args(["serve", "--listen", &addr, "--data-dir"])
                    .arg(&dir)
                    .args(["--shards", &args.shards.to_string()])
                    .args(["--set", &format!("log.io={io}")])
                    .args(["--set", &format!("log.flush={flush}")]);
                for kv in &args.broker_set {
                    c.args(["--set", kv]);
                    if let Some((k, v)) = kv.split_once('=') {
                        config.insert(k.to_string(), v.to_string());
                    }
                }
                let log = std::fs::File::create(data_root.join(format!("broker-{n}.log")))?;
                c.stdout(Stdio::null()).stderr(log);
                let mut p = spawn_in_group(c)?;
                wait_listening(&addr, &mut p, Duration::from_secs(20))?;
                ("ringbroker".to_string(), addr, Some(p), config)
            }
            (None, None) => anyhow::bail!("no broker to bench"),
        };
        for &rate in &args.rates {
            eprintln!("sweep: [{}] {} at {rate} rec/s", n + 1, setting.label);
            let bench = BenchArgs {
                bootstrap: bootstrap.clone(),
                topic: format!("sweep-{n}-{rate}-{}", std::process::id()),
                partitions: args.partitions,
                replication_factor: 1,
                producers: args.producers,
                consumers: args.consumers,
                record_size: args.record_size,
                batch_size: setting.batch_size,
                linger_ms: args.linger_ms,
                compression: setting.codec,
                acks: setting.acks,
                rate,
                warmup: args.warmup,
                duration: args.duration,
                key_distribution: KeyDistribution::None,
                transactional: 0,
                group: None,
                drain_timeout: 10.0,
                broker_config: config.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                producer_set: Vec::new(),
                consumer_set: Vec::new(),
                json: None,
                quiet: true,
            };
            let outcome = crate::run::run(&bench);
            let (results, error) = match outcome {
                Ok(report) => (Some(report.results), None),
                Err(e) => {
                    eprintln!("sweep: {} at {rate}: {e:#}", setting.label);
                    (None, Some(format!("{e:#}")))
                }
            };
            let ratios = match (&results, &limits) {
                (Some(r), Some(l)) => Some(ratios(r, l)),
                _ => None,
            };
            if let Some(r) = &results {
                eprintln!(
                    "sweep:   {:.0} rec/s, {:.1} MB/s, ack p50 {:.2} p99 {:.2} ms, e2e p99 {:.2} ms",
                    r.produce.records_per_s,
                    r.produce.mb_per_s,
                    r.ack_latency_ms.p50,
                    r.ack_latency_ms.p99,
                    r.e2e_latency_ms.p99
                );
            }
            points.push(Point {
                setting: setting.label.clone(),
                broker: broker.clone(),
                broker_config: config.clone(),
                codec: setting.codec,
                batch_size: setting.batch_size,
                acks: setting.acks,
                rate,
                results,
                ratios,
                error,
            });
        }
        if setting.pair.is_some() {
            let _ = std::fs::remove_dir_all(data_root.join(format!("broker-{n}")));
        }
    }
    if args.data_root.is_none() {
        let _ = std::fs::remove_dir_all(&data_root);
    }

    let report = SweepReport {
        benchmark: "ringbroker-bench-sweep",
        version: env!("CARGO_PKG_VERSION"),
        machine,
        params: args,
        limits,
        points,
    };
    let stem = out.join("sweep");
    write_json(&stem.with_extension("json"), &report)?;
    std::fs::write(stem.with_extension("md"), markdown(&report))?;
    write_plots(&out, &report.points)?;
    println!("{}", markdown(&report));
    eprintln!("sweep: wrote {}/sweep.{{json,md}} and plots", out.display());
    Ok(())
}

/// The broker binary when `--broker-bin` is not given: `ringbroker` in this executable's
/// directory (where cargo builds both binaries), else the first on PATH.
fn default_broker_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let sibling = exe.with_file_name("ringbroker");
    if sibling.is_file() {
        return Ok(sibling);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("ringbroker"))
            .find(|p| p.is_file())
    });
    on_path.with_context(|| {
        format!(
            "no ringbroker binary in {} or on PATH: build it (cargo build --release -p \
             ringbroker) or pass --broker-bin",
            exe.parent().unwrap_or(Path::new(".")).display()
        )
    })
}

fn ratios(r: &Results, l: &Limits) -> Ratios {
    let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    Ratios {
        produce_to_tcp_loopback: div(r.produce.mb_per_s, l.tcp_loopback_mb_s),
        produce_to_disk_write: div(r.produce.mb_per_s, l.disk_write_mb_s),
        ack_p50_to_fdatasync_p50: div(r.ack_latency_ms.p50, l.fdatasync_ms_p50),
        ack_p99_to_fdatasync_p50: div(r.ack_latency_ms.p99, l.fdatasync_ms_p50),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sweep: SweepArgs,
    }

    #[test]
    fn default_matrix_varies_one_thing_at_a_time() {
        let cli = Cli::parse_from(["x"]);
        let s = settings(&cli.sweep).unwrap();
        // 6 pairs, 4 more codecs, 2 more batch sizes, 1 more acks.
        assert_eq!(s.len(), 13);
        assert_eq!(s[0].label, "buffered/none");
        assert!(s.iter().all(|x| x.pair.is_some()));
        let ext = Cli::parse_from(["x", "--bootstrap", "h:1", "--peer-name", "tansu"]);
        let s = settings(&ext.sweep).unwrap();
        assert_eq!(s.len(), 8);
        assert!(s.iter().all(|x| x.pair.is_none()));
        assert_eq!(s[1].label, "tansu gzip");
    }

    #[test]
    fn utc_date_is_iso() {
        let d = utc_date();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"));
    }
}
