//! The `ringbroker-bench` command line: one run, `sweep` or `combine`.

use clap::{Parser, Subcommand};
use ringbroker_bench::args::{BenchArgs, CombineArgs, SweepArgs};
use ringbroker_bench::{drain, render, report, run, sweep};
use std::process::ExitCode;

/// Benchmark a Kafka-compatible broker (open-loop load, latency percentiles), or run a
/// sweep of settings with `ringbroker-bench sweep`.
#[derive(Parser)]
#[command(name = "ringbroker-bench", version)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    sub: Option<Sub>,
    #[command(flatten)]
    run: BenchArgs,
}

#[derive(Subcommand)]
enum Sub {
    /// Run a matrix of broker and client settings; write JSON, a markdown table and SVG plots.
    Sweep(Box<SweepArgs>),
    /// Combine several sweeps' JSON into one markdown table and one set of plots.
    Combine(CombineArgs),
    /// Read a topic from its start to its current end once; print bytes, seconds and MB/s.
    Drain(drain::DrainArgs),
}

/// Runs the command line's bench: prints the table, writes the JSON if asked.
fn bench(cli: Cli) -> anyhow::Result<()> {
    match cli.sub {
        Some(Sub::Sweep(args)) => sweep::run(&args),
        Some(Sub::Combine(args)) => render::combine(&args),
        Some(Sub::Drain(args)) => {
            let drained = drain::run(&args)?;
            let line = serde_json::to_string(&drained)?;
            println!("{line}");
            if let Some(path) = &args.json {
                std::fs::write(path, format!("{line}\n"))?;
            }
            Ok(())
        }
        None => {
            let report = run::run(&cli.run)?;
            print!("{}", report.table());
            if let Some(path) = &cli.run.json {
                report::write_json(path, &report)?;
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // librdkafka's log lines reach stderr through `log` -> tracing, as the broker logs:
    // RUST_LOG filters them (default info).
    let filter = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(f) => f,
        Err(e) => {
            if std::env::var_os("RUST_LOG").is_some() {
                eprintln!("ringbroker-bench: ignoring RUST_LOG: {e}");
            }
            tracing_subscriber::EnvFilter::new("info")
        }
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    match bench(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The prefix the bench's errors always had (it was `ringbroker bench`).
            eprintln!("ringbroker bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
