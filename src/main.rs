//! The `ringbroker` command line.

use clap::{Parser, Subcommand};
use ringbroker::config::BrokerConfig;
use ringbroker::config::security::Mechanism;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Manage SASL users offline (the broker must not be running on the data dir).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Moved: the load generator is the `ringbroker-bench` binary now (package `bench/`);
    /// this only says so.
    #[command(hide = true, disable_help_flag = true)]
    Bench(MovedArgs),
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user, or replace its credential for the mechanism given.
    Add(UsersAddArgs),
}

#[derive(clap::Args)]
struct UsersAddArgs {
    /// The broker's data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long)]
    mechanism: String,
    #[arg(long)]
    user: String,
    #[arg(long)]
    password: String,
    /// SCRAM iterations (PBKDF2 rounds of the stored hash), 4096-16384.
    #[arg(long, default_value_t = 4096)]
    iterations: u32,
}

/// Whatever followed `ringbroker bench`, to show the same command with the new binary.
#[derive(clap::Args)]
struct MovedArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
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
    // RUST_LOG, as Rust programs read it: `debug`, or per module
    // (`info,ringbroker::server=debug`). Default info; a value that does not parse says so.
    let filter = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(f) => f,
        Err(e) => {
            if std::env::var_os("RUST_LOG").is_some() {
                eprintln!("ringbroker: ignoring RUST_LOG: {e}");
            }
            tracing_subscriber::EnvFilter::new("info")
        }
    };
    // Colour only on a terminal: logs redirected to files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(moved) => {
            let args: String = moved.args.iter().map(|a| format!(" {a}")).collect();
            eprintln!(
                "ringbroker: `ringbroker bench` moved to its own binary, `ringbroker-bench`, \
                 so the broker no longer links librdkafka. Run:\n  \
                 ringbroker-bench{args}\n\
                 (build it with `cargo build --release -p ringbroker-bench`, or run it with \
                 `cargo run --release -p ringbroker-bench --{args}`)"
            );
            ExitCode::from(2)
        }
        Command::Users(UsersCommand::Add(args)) => {
            let Some(mechanism) = Mechanism::parse(&args.mechanism) else {
                eprintln!(
                    "ringbroker: unknown mechanism {:?}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                    args.mechanism
                );
                return ExitCode::from(2);
            };
            match ringbroker::broker::add_user(
                &args.data_dir,
                mechanism,
                &args.user,
                &args.password,
                args.iterations,
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ringbroker: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => {
            let config = match build_config(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ringbroker: config error: {e}");
                    return ExitCode::from(2);
                }
            };
            match ringbroker::broker::run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ringbroker: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
