//! Renders sweeps: the markdown table, the SVG plots, and `ringbroker-bench combine`.

use crate::args::CombineArgs;
use crate::report::Results;
use crate::svg::{self, Series};
use crate::sweep_report::{Point, Ratios, SweepReport};
use anyhow::Context as _;
use std::fmt::Write as _;
use std::path::Path;

/// `sweep.md`: the run's parameters, the machine and its limits, then the table.
pub fn markdown(report: &SweepReport<'_>) -> String {
    let mut s = String::new();
    let p = report.params;
    let _ = writeln!(s, "# ringbroker bench sweep\n");
    let _ = writeln!(s, "Machine: {}\n", report.machine.describe());
    let _ = writeln!(
        s,
        "Records of {} B, {} partitions, {} producer(s), {} consumer(s), linger {} ms, \
         {} s measured after {} s warm-up per point. Latencies in ms from each record's \
         scheduled time (open loop); MB = 10^6 bytes of record values.\n",
        p.record_size, p.partitions, p.producers, p.consumers, p.linger_ms, p.duration, p.warmup
    );
    if let Some(l) = &report.limits {
        let _ = writeln!(
            s,
            "Machine limits (same run): loopback TCP {:.0} MB/s ({}), sequential disk write \
             {:.0} MB/s ({}), fdatasync of a 4 KiB append p50 {:.3} ms / p99 {:.3} ms ({}).\n",
            l.tcp_loopback_mb_s,
            if l.tcp_loopback_mb_s_iperf3.is_some() {
                "iperf3"
            } else {
                "built-in"
            },
            l.disk_write_mb_s,
            if l.disk_write_mb_s_fio.is_some() {
                "fio"
            } else {
                "built-in"
            },
            l.fdatasync_ms_p50,
            l.fdatasync_ms_p99,
            if l.fdatasync_ms_p50_fio.is_some() {
                "fio"
            } else {
                "built-in"
            },
        );
    }
    s.push_str(&table(&report.points));
    s
}

/// The results table, one row per point.
pub fn table(points: &[Point]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| setting | offered rec/s | acked rec/s | MB/s | ack p50 | ack p99 | ack p99.9 | ack max \
         | e2e p50 | e2e p99 | consumed rec/s | errors | MB/s / loopback | MB/s / disk | ack p99 / fdatasync |"
    );
    let _ = writeln!(s, "|{}", "---|".repeat(15));
    for pt in points {
        match (&pt.results, &pt.error) {
            (Some(r), _) => {
                let ratio = |f: &dyn Fn(&Ratios) -> f64, digits: usize| {
                    pt.ratios
                        .as_ref()
                        .map_or("-".to_string(), |q| format!("{:.*}", digits, f(q)))
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} | {} | {} |",
                    pt.setting,
                    pt.rate,
                    r.produce.records_per_s,
                    r.produce.mb_per_s,
                    r.ack_latency_ms.p50,
                    r.ack_latency_ms.p99,
                    r.ack_latency_ms.p999,
                    r.ack_latency_ms.max,
                    r.e2e_latency_ms.p50,
                    r.e2e_latency_ms.p99,
                    r.consume.records_per_s,
                    r.produce.errors + r.consume.errors,
                    ratio(&|q| q.produce_to_tcp_loopback, 4),
                    ratio(&|q| q.produce_to_disk_write, 3),
                    ratio(&|q| q.ack_p99_to_fdatasync_p50, 1),
                );
            }
            (None, e) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | failed: {} |{}",
                    pt.setting,
                    pt.rate,
                    e.as_deref().unwrap_or("?").replace('|', "/"),
                    " |".repeat(12)
                );
            }
        }
    }
    s
}

/// The SVG plots of ack and end-to-end p99 against throughput, one curve per setting.
pub fn write_plots(out: &Path, points: &[Point]) -> anyhow::Result<()> {
    let mut order: Vec<&str> = Vec::new();
    for p in points {
        if !order.contains(&p.setting.as_str()) {
            order.push(&p.setting);
        }
    }
    let series = |f: &dyn Fn(&Results) -> f64| -> Vec<Series> {
        order
            .iter()
            .map(|label| Series {
                label: label.to_string(),
                points: points
                    .iter()
                    .filter(|p| p.setting == *label)
                    .filter_map(|p| p.results.as_ref())
                    .map(|r| (r.produce.mb_per_s, f(r)))
                    .collect(),
            })
            .collect()
    };
    let plots = [
        (
            "ack-p99.svg",
            "Ack latency p99 vs throughput",
            "ack p99 (ms, log)",
            series(&|r| r.ack_latency_ms.p99),
        ),
        (
            "e2e-p99.svg",
            "End-to-end latency p99 vs throughput",
            "end-to-end p99 (ms, log)",
            series(&|r| r.e2e_latency_ms.p99),
        ),
    ];
    for (file, title, y, s) in plots {
        std::fs::write(
            out.join(file),
            svg::line_chart(title, "produced MB/s (record values)", y, &s),
        )?;
    }
    Ok(())
}

/// Reads the sweeps' JSON, prints the combined table and writes it with the plots.
pub fn combine(args: &CombineArgs) -> anyhow::Result<()> {
    let mut s = String::from("# ringbroker bench: combined sweeps\n\n");
    let mut points = Vec::new();
    for input in &args.inputs {
        let text = std::fs::read_to_string(input)
            .with_context(|| format!("reading {}", input.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", input.display()))?;
        let these: Vec<Point> = serde_json::from_value(json["points"].clone())
            .with_context(|| format!("points of {}", input.display()))?;
        let l = &json["limits"];
        let _ = writeln!(
            s,
            "- `{}`: {} point(s); machine {} ({} cores); limits in that run: loopback {:.0} MB/s, \
             disk write {:.0} MB/s, fdatasync p50 {:.3} ms",
            input.display(),
            these.len(),
            json["machine"]["cpu"].as_str().unwrap_or("?"),
            json["machine"]["cores"],
            l["tcp_loopback_mb_s"].as_f64().unwrap_or(0.0),
            l["disk_write_mb_s"].as_f64().unwrap_or(0.0),
            l["fdatasync_ms_p50"].as_f64().unwrap_or(0.0),
        );
        points.extend(these);
    }
    s.push('\n');
    s.push_str(&table(&points));
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("combined.md"), &s)?;
    write_plots(&args.out, &points)?;
    println!("{s}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Acks, Compression};
    use std::collections::BTreeMap;

    #[test]
    fn table_marks_failed_points_and_missing_limits() {
        let point = |results: Option<Results>, error: Option<String>| Point {
            setting: "direct/fsync".into(),
            broker: "ringbroker".into(),
            broker_config: BTreeMap::new(),
            codec: Compression::None,
            batch_size: 1024,
            acks: Acks::All,
            rate: 100,
            results,
            ratios: None,
            error,
        };
        let results = Results {
            measured_s: 1.0,
            open_loop: true,
            offered_records_per_s: 100,
            records_sent_total: 100,
            records_unacked: 0,
            produce: Default::default(),
            ack_latency_ms: Default::default(),
            consume: Default::default(),
            e2e_latency_ms: Default::default(),
        };
        let t = table(&[
            point(Some(results), None),
            point(None, Some("broker | exited".into())),
        ]);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 4, "{t}");
        assert!(rows[2].ends_with("| - | - | - |"), "{t}");
        assert!(rows[3].contains("failed: broker / exited"), "{t}");
        // Every row has the header's number of cells.
        let cells = |r: &str| r.matches('|').count();
        assert!(rows.iter().all(|r| cells(r) == cells(rows[0])), "{t}");
    }
}
