//! The `ringbroker` command line.

use clap::{Parser, Subcommand};
use ringbroker::config::BrokerConfig;
use std::path::PathBuf;
use std::process::ExitCode;

/// Huge, never-touched reservations (wire-supplied counts) map address space instead of
/// aborting the process; see `ringbroker::alloc`.
#[global_allocator]
static GLOBAL: ringbroker::alloc::BrokerAlloc = ringbroker::alloc::BrokerAlloc;

#[derive(Parser)]
#[command(
    name = "ringbroker",
    version,
    about = "Kafka-wire-compatible broker on io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Benchmark a Kafka-compatible broker (open-loop load, latency percentiles), or run a
    /// sweep of settings with `bench sweep`.
    Bench(Box<ringbroker::bench::BenchCommand>),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file (see configs/ringbroker.toml for every key and its default).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on, HOST:PORT.
    #[arg(long)]
    listen: Option<String>,
    /// HOST:PORT returned to clients in Metadata.
    #[arg(long)]
    advertised: Option<String>,
    /// Directory of the logs and the metadata.
    #[arg(long)]
    data_dir: Option<String>,
    /// Number of shards; 0 = one per core.
    #[arg(long)]
    shards: Option<String>,
    /// Override any config key: --set log.flush=fsync (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn build_config(args: &ServeArgs) -> Result<BrokerConfig, ringbroker::config::ConfigError> {
    let mut config = BrokerConfig::default();
    if let Some(path) = &args.config {
        config.apply_toml_file(path)?;
    }
    for kv in &args.set {
        config.apply_override(kv)?;
    }
    let flags = [
        ("listen", &args.listen),
        ("advertised", &args.advertised),
        ("data.dir", &args.data_dir),
        ("shards", &args.shards),
    ];
    for (key, value) in flags {
        if let Some(v) = value {
            config.set(key, v)?;
        }
    }
    config.validate()?;
    Ok(config)
}

fn main() -> ExitCode {
    // RINGBROKER_LOG=debug|info|warn|error (default info).
    let level = std::env::var("RINGBROKER_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    // Colour only on a terminal: logs redirected to files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(bench) => match ringbroker::bench::main(*bench) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringbroker bench: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(args) => {
            let config = match build_config(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ringbroker: config error: {e}");
                    return ExitCode::from(2);
                }
            };
            match ringbroker::shard::process::run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ringbroker: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
