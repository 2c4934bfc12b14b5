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
    /// Repair a partition the broker took offline for damage on disk (run with the broker
    /// stopped): keeps the log up to its last good batch and moves everything after it,
    /// and damaged index or checkpoint files, to `repair-<ms>/` in the partition directory.
    Repair(RepairArgs),
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

#[derive(clap::Args)]
struct RepairArgs {
    /// The broker's data directory.
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    partition: i32,
    /// Print what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `ringbroker repair`: see `ringbroker::storage::repair`.
fn repair(args: &RepairArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use ringbroker::storage::repair::{self, Action};
    let config = BrokerConfig {
        data_dir: args.data_dir.clone(),
        ..BrokerConfig::default()
    };
    // The broker holds this lock while it runs: never repair under it.
    let _lock = ringbroker::broker::lock_data_dir(&config)?;
    let meta = ringbroker::shard::meta::load(&args.data_dir)?;
    let topic = meta
        .topics
        .get(&args.topic)
        .with_context(|| format!("no topic {:?} in {}", args.topic, args.data_dir.display()))?;
    if !(0..topic.partitions).contains(&args.partition) {
        anyhow::bail!("topic {} has no partition {}", args.topic, args.partition);
    }
    let compacted = topic
        .configs
        .get("cleanup.policy")
        .is_some_and(|p| p.contains("compact"))
        || ringbroker::shard::meta::is_internal(&args.topic);
    let dir = args
        .data_dir
        .join(format!("{}-{}", args.topic, args.partition));
    let plan =
        repair::plan(&dir, compacted).with_context(|| format!("cannot read {}", dir.display()))?;
    println!("{}:", dir.display());
    if plan.damage.is_empty() {
        println!("  no damage found; nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    for d in &plan.damage {
        println!("  damage: {d}");
    }
    match plan.end_offset {
        Some(end) => println!("  keeps every batch before offset {end}; later offsets are dropped"),
        None => println!("  keeps no batch"),
    }
    let verb = if args.dry_run { "would " } else { "" };
    for a in &plan.actions {
        match a {
            Action::Truncate { file, position } => {
                println!("  {verb}cut {} at position {position}", file.display())
            }
            Action::Remove { file } => println!("  {verb}remove {}", file.display()),
        }
    }
    if args.dry_run {
        println!("  dry run: nothing changed");
        return Ok(ExitCode::SUCCESS);
    }
    let moved = repair::apply(&dir, &plan)?;
    println!(
        "  done: removed files and cut-off bytes are in {} (delete it once you no longer \
         need them)",
        moved.display()
    );
    Ok(ExitCode::SUCCESS)
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
        Command::Repair(args) => match repair(&args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("ringbroker repair: {e:#}");
                ExitCode::FAILURE
            }
        },
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
            ringbroker::os::limits::keep_large_allocations();
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
