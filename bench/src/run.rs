//! One benchmark run (`ringbroker-bench` without a subcommand): create the topic, start
//! the consumers, produce on the open-loop schedule (see [`crate::schedule`]), drain, and
//! report (see [`crate::report`]).

use crate::args::{BenchArgs, split_kv};
use crate::report::{BrokerInfo, Flow, Report, Results};
use crate::stats::Stats;
use crate::{consumer, hardware, producer, record};
use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Creates the topic if it is missing; returns its partition count.
pub fn ensure_topic(args: &BenchArgs) -> anyhow::Result<i32> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .create()?;
    let topic = NewTopic::new(
        &args.topic,
        args.partitions,
        TopicReplication::Fixed(args.replication_factor),
    );
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = futures_lite::future::block_on(admin.create_topics([&topic], &options))
        .context("CreateTopics")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    // The topic may have existed with another partition count: use what the broker says.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(&args.topic), Duration::from_secs(5))?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == args.topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len() as i32);
        if partitions > 0 {
            if partitions != args.partitions {
                eprintln!(
                    "bench: topic {} exists with {partitions} partitions (not {})",
                    args.topic, args.partitions
                );
            }
            return Ok(partitions);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "topic {} has no partitions in the metadata",
            args.topic
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One benchmark run: create the topic, start consumers, produce, drain, report.
pub fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    args.validate().map_err(anyhow::Error::msg)?;
    let partitions = ensure_topic(args)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let run_id =
        record::XorShift::new(now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32))
            .next_u64();
    let stats = Arc::new(Stats::new(args.record_size));
    let consumers = (0..args.consumers)
        .map(|i| consumer::create(args, i, partitions))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let assigned: Vec<AtomicUsize> = (0..args.consumers).map(|_| AtomicUsize::new(0)).collect();
    let stop_consumers = AtomicBool::new(false);
    let done = AtomicBool::new(false);

    let outcomes = std::thread::scope(|s| {
        for (consumer, assigned) in consumers.into_iter().zip(&assigned) {
            let (stats, stop) = (stats.clone(), &stop_consumers);
            s.spawn(move || consumer::run(consumer, stats, run_id, stop, assigned));
        }
        if let Err(e) = wait_for_assignment(args, partitions, &assigned) {
            stop_consumers.store(true, Relaxed);
            return Err(e);
        }

        let start = Instant::now() + Duration::from_millis(20);
        let window_start = start + Duration::from_secs_f64(args.warmup);
        let end = window_start + Duration::from_secs_f64(args.duration);
        let give_up = end + Duration::from_secs_f64(args.drain_timeout);
        stats.set_window(window_start, end);
        if !args.quiet {
            let (stats, done) = (stats.clone(), &done);
            s.spawn(move || progress(&stats, start, done));
        }
        let producers: Vec<_> = (0..args.producers)
            .map(|i| {
                let stats = stats.clone();
                s.spawn(move || producer::run(args, i, stats, run_id, start, end, give_up))
            })
            .collect();
        let outcomes: Vec<_> = producers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("producer thread panicked")))
            })
            .collect();
        // Drain: the consumers may still be receiving what was acknowledged last.
        let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout);
        while args.consumers > 0
            && stats.consumed_total.load(Relaxed) < stats.acked_total.load(Relaxed)
            && Instant::now() < drain_deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop_consumers.store(true, Relaxed);
        done.store(true, Relaxed);
        Ok(outcomes)
    })?;
    let mut unflushed = 0;
    for outcome in outcomes {
        unflushed += outcome?.unflushed;
    }
    if unflushed > 0 {
        eprintln!("bench: {unflushed} records were still unacknowledged at the end");
    }
    Ok(report(args, &stats, unflushed))
}

/// Waits until the consumers own every partition, so no record is produced before they
/// know where to read (with a group the first assignment takes a rebalance).
fn wait_for_assignment(
    args: &BenchArgs,
    partitions: i32,
    assigned: &[AtomicUsize],
) -> anyhow::Result<()> {
    if args.consumers == 0 {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while assigned.iter().map(|a| a.load(Relaxed)).sum::<usize>() < partitions as usize {
        if Instant::now() >= deadline {
            let hint = match &args.group {
                Some(g) => format!(
                    " (consumer group {g}: does the broker support consumer groups? \
                     without --group, partitions are assigned directly)"
                ),
                None => String::new(),
            };
            anyhow::bail!("the consumers were not assigned every partition within 30 s{hint}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Prints a progress line on stderr every second until `done`.
fn progress(stats: &Stats, start: Instant, done: &AtomicBool) {
    let mb = stats.record_size as f64 / 1e6;
    let (mut acked, mut consumed) = (0, 0);
    let mut next = start + Duration::from_secs(1);
    while !done.load(Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += Duration::from_secs(1);
        let (a, c) = (
            stats.acked_total.load(Relaxed),
            stats.consumed_total.load(Relaxed),
        );
        let (da, dc) = (a - acked, c - consumed);
        (acked, consumed) = (a, c);
        // The second just ended counts as warm-up if it began before the window.
        let phase = if stats.window_started_at(now - Duration::from_secs(1)) {
            "measure"
        } else {
            "warmup "
        };
        let errors = stats.produce_errors.load(Relaxed) + stats.consume_errors.load(Relaxed);
        eprintln!(
            "[{:>4.0}s {phase}] produced {da:>7} rec/s {:>7.1} MB/s | consumed {dc:>7} rec/s \
             | p99 ack {:>7.2} ms e2e {:>7.2} ms | errors {errors}",
            (now - start).as_secs_f64(),
            da as f64 * mb,
            stats.ack_latency().quantile_ms(0.99),
            stats.e2e_latency().quantile_ms(0.99),
        );
    }
}

fn report(args: &BenchArgs, stats: &Stats, unacked: u64) -> Report {
    let secs = args.duration;
    let mb = stats.record_size as f64 / 1e6;
    let flow = |records: u64, in_window: u64, errors: u64, total: u64| Flow {
        records,
        records_per_s: in_window as f64 / secs,
        mb_per_s: in_window as f64 * mb / secs,
        errors,
        records_total: total,
    };
    let broker_config = args
        .broker_config
        .iter()
        .filter_map(|kv| split_kv(kv).ok())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Report {
        benchmark: "ringbroker-bench",
        version: env!("CARGO_PKG_VERSION"),
        unix_time_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        machine: hardware::Machine::detect(),
        params: args.clone(),
        broker: BrokerInfo {
            bootstrap: args.bootstrap.clone(),
            config: broker_config,
        },
        results: Results {
            measured_s: secs,
            open_loop: args.rate > 0,
            offered_records_per_s: args.rate,
            records_sent_total: stats.sent_total.load(Relaxed),
            records_unacked: unacked,
            produce: flow(
                stats.acked.load(Relaxed),
                stats.acked_in_window.load(Relaxed),
                stats.produce_errors.load(Relaxed),
                stats.acked_total.load(Relaxed),
            ),
            ack_latency_ms: stats.ack_latency().summary(),
            consume: flow(
                stats.consumed.load(Relaxed),
                stats.consumed_in_window.load(Relaxed),
                stats.consume_errors.load(Relaxed),
                stats.consumed_total.load(Relaxed),
            ),
            e2e_latency_ms: stats.e2e_latency().summary(),
        },
    }
}
