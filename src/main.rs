//! The `comet` binary: command line -> config -> logging -> server.
//!
//! Everything else lives in the library: `config` loads and validates, and
//! `server` binds and runs. This file only turns arguments into one of those
//! calls and results into exit codes (see [`USAGE`]).

use std::path::PathBuf;
use std::process::ExitCode;

use comet::config::{effective_yaml, Config, DEFAULT_YAML};
use comet::server::{Server, Signals};

/// Exit code for a bad command line or a bad config file (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// Exit code when the server cannot start or fails while running.
const EXIT_FAILURE: u8 = 1;

/// The `--help` text.
const USAGE: &str = "\
usage: comet [-c FILE] [--check-config | --print-config | --print-default-config]

An icomet-compatible comet (server push) server.

options:
  -c, --config FILE   read the configuration from FILE (YAML); without it the
                      built-in defaults are used (see --print-default-config);
                      --config=FILE also works
      --check-config  load and validate the configuration (defaults < FILE <
                      COMET_* variables), print `config OK` and exit
      --print-config  print the effective configuration (defaults < FILE <
                      COMET_* variables) as YAML, secrets masked, and exit
      --print-default-config
                      print the documented default configuration (comet.yaml,
                      every key with a comment) and exit
  -h, --help          print this help and exit
  -V, --version       print the version and exit

environment:
  COMET_<SECTION>_<KEY>
                      any config key, in upper case; wins over FILE:
                      COMET_FRONT_LISTEN=0.0.0.0:8100, COMET_ADMIN_KEY=...,
                      COMET_LOG_LEVEL=debug (top-level keys have no section),
                      lists comma-separated (COMET_ADMIN_ALLOW=127.0.0.1,10.0.0.5);
                      an unknown COMET_ variable is a config error
  RUST_LOG            log filter; overrides `log_level` from the config
                      (e.g. RUST_LOG=debug, RUST_LOG=comet=trace)
  GLIBC_TUNABLES      comet restarts itself once with
                      glibc.malloc.tcache_count=0 added (memory freed after
                      a burst goes back to the OS); a tcache_count set here
                      stands, e.g. glibc.malloc.tcache_count=7 keeps glibc's
                      default

signals:
  SIGTERM, SIGINT     graceful shutdown (shutdown_grace_secs); a second one
                      exits at once
  SIGHUP              reload FILE and the COMET_* variables: keys that can
                      change live take effect, the others are logged as
                      needing a restart; an invalid config changes nothing

exit codes:
  0   normal end (SIGINT or SIGTERM), or a successful --check-config,
      --print-config, --print-default-config, --help or --version
  1   the server could not bind its listeners or failed while running
  64  bad command line, or a configuration that cannot be read (missing or
      unreadable file), parsed or validated, or a bad COMET_* variable
";

/// What the command line asks for.
enum Mode {
    /// Start the server.
    Run,
    /// `--check-config`.
    Check,
    /// `--print-config`: the effective configuration.
    Print,
    /// `--print-default-config`: the documented defaults (comet.yaml).
    PrintDefault,
}

/// The parsed command line.
struct Args {
    /// `-c FILE`; `None` runs with the embedded `comet.yaml`.
    config: Option<PathBuf>,
    mode: Mode,
}

/// Why parsing stopped early: `--help`, `--version` or a usage error.
enum Exit {
    Help,
    Version,
    Usage(String),
}

/// Reads the arguments (without the program name). Options may come in any
/// order; a repeated `-c` takes the last file, as icomet does.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, Exit> {
    let mut parsed = Args {
        config: None,
        mode: Mode::Run,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Err(Exit::Help),
            "-V" | "--version" => return Err(Exit::Version),
            "-c" | "--config" => match args.next() {
                Some(file) => parsed.config = Some(PathBuf::from(file)),
                None => return Err(Exit::Usage(format!("{arg} needs a FILE"))),
            },
            "--check-config" | "--print-config" | "--print-default-config" => {
                if !matches!(parsed.mode, Mode::Run) {
                    let why = "--check-config, --print-config and --print-default-config exclude each other";
                    return Err(Exit::Usage(why.to_string()));
                }
                parsed.mode = match arg.as_str() {
                    "--check-config" => Mode::Check,
                    "--print-config" => Mode::Print,
                    _ => Mode::PrintDefault,
                };
            }
            _ => match arg.strip_prefix("--config=") {
                Some(file) => parsed.config = Some(PathBuf::from(file)),
                None => return Err(Exit::Usage(format!("unknown argument `{arg}`"))),
            },
        }
    }
    Ok(parsed)
}

/// CLI -> Config::load -> validate -> logging -> Server::bind -> run.
fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(Exit::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(Exit::Version) => {
            println!("comet {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(Exit::Usage(why)) => {
            eprintln!("comet: {why}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Mode::PrintDefault = args.mode {
        print!("{DEFAULT_YAML}");
        return ExitCode::SUCCESS;
    }

    let config = match Config::load_effective(args.config.as_deref(), std::env::vars_os()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("invalid config: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match args.mode {
        Mode::Check => {
            println!("config OK");
            return ExitCode::SUCCESS;
        }
        Mode::Print => {
            print!("{}", effective_yaml(&config));
            return ExitCode::SUCCESS;
        }
        Mode::Run | Mode::PrintDefault => {}
    }
    // Before any thread exists; returns only if it did not re-execute.
    if let Some(e) = comet::malloc::reexec_with_tcache_off() {
        eprintln!("comet: cannot restart with glibc's per-thread malloc cache off ({e}); going on with it");
    }

    if let Err(e) = comet::logging::init(&config.log_level, config.log_format) {
        eprintln!("comet: {e}");
        return ExitCode::from(EXIT_FAILURE);
    }
    if let Some(t) = std::env::var_os("GLIBC_TUNABLES") {
        log::info!("glibc tunables: {}", t.to_string_lossy());
    }

    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let server = match Server::bind(config) {
        Ok(server) => server.reload_from(args.config.clone()),
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    log::info!(
        "comet {} listening: front {}, admin {}",
        env!("CARGO_PKG_VERSION"),
        server.front_addr(),
        server.admin_addr()
    );
    match server.run_until_signal(signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
