//! `idflow`: the command line. It parses arguments and calls into the `shared` crate (serve,
//! validate, test, deploy), the `flopack` crate (import), or the admin API of a running server
//! (run, runs, show, record).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;

mod client;
#[cfg(feature = "aws")]
mod deploy;
mod import_cmd;
mod render;
mod tables_cmd;
mod test_cmd;

/// Counts allocations per thread so template renders are held to their memory budget.
#[global_allocator]
static ALLOCATOR: domain::budget::CountingAllocator = domain::budget::CountingAllocator;

/// Self-hosted identity automation: flows in git, triggered by schedules, Okta events, HTTP calls
/// and other flows, with a step-by-step history.
#[derive(Debug, Parser)]
#[command(name = "idflow", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the API, the worker and the scheduler in one process on the embedded store.
    Serve {
        /// Directory with the flow files and idflow.yaml.
        #[arg(long, default_value = "./flows")]
        flows: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Directory of the embedded SQLite store.
        #[arg(long, default_value = "./.idflow")]
        data: PathBuf,
        /// Largest accepted request body, in bytes.
        #[arg(long, default_value_t = web::body::DEFAULT_BODY_LIMIT)]
        body_limit: usize,
        /// Runs processed at once.
        #[arg(long, default_value_t = 16)]
        workers: usize,
        /// How long a client has to send a request's line and headers (`10s`, `500ms`); an idle
        /// keep-alive connection is closed after as long.
        #[arg(long, default_value = "10s", value_parser = parse_timeout)]
        header_timeout: Duration,
        /// How long a client has to send a whole request body; 408 after.
        #[arg(long, default_value = "30s", value_parser = parse_timeout)]
        body_timeout: Duration,
        /// HTTP connections open at once; more wait in the listen backlog until one closes.
        #[arg(long, default_value_t = idflow::serve::DEFAULT_MAX_CONNECTIONS)]
        max_connections: usize,
        /// Largest accepted request head (request line and headers), in bytes (431 beyond).
        #[arg(long, default_value_t = idflow::serve::DEFAULT_MAX_HEADER_BYTES)]
        max_header_bytes: usize,
        /// Do not watch the flows directory for changes.
        #[arg(long)]
        no_reload: bool,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
    },
    /// Checks flow files and idflow.yaml; prints every error and exits 1 if there is any.
    Validate {
        /// Flow files or directories (default ./flows).
        paths: Vec<PathBuf>,
        /// Print the diagnostics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Starts a run of a flow with the given input.
    Run {
        /// The flow's name.
        name: String,
        /// The run input, as JSON.
        #[arg(long, default_value = "{}")]
        input: String,
        /// Wait for the run to end and print it card by card.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[command(flatten)]
        server: client::ServerArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists runs, newest first.
    Runs {
        #[arg(long)]
        flow: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        server: client::ServerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Shows one run card by card.
    Show {
        run_id: String,
        #[command(flatten)]
        server: client::ServerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Runs flow tests (*.test.yaml) against stubbed cards; exits 1 on any failure.
    Test {
        /// Flow directories, test files or flow files (default ./flows).
        paths: Vec<PathBuf>,
        /// Run only the cases whose name (or flow) contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Also write the results as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// Lists, shows and imports the rows of the tables declared in idflow.yaml and tables/*.yaml (local data directory).
    Tables {
        #[command(subcommand)]
        command: tables_cmd::TablesCommand,
    },
    /// Validates a flow directory and deploys it: new flow versions, project files, schedules.
    #[cfg(feature = "aws")]
    Deploy(deploy::DeployArgs),
    /// Imports flows from other tools: `idflow import flopack <file-or-dir> --out <dir>`.
    Import {
        #[command(subcommand)]
        command: import_cmd::ImportCommand,
    },
    /// Writes a test case from a run in history: its input, card outputs as stubs, its result.
    Record {
        run_id: String,
        /// Test file to create or append to (default: print to stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            flows,
            addr,
            data,
            body_limit,
            workers,
            header_timeout,
            body_timeout,
            max_connections,
            max_header_bytes,
            no_reload,
            log_json,
        } => {
            init_logging(log_json);
            let options = idflow::serve::ServeOptions {
                flows_dir: flows,
                addr,
                data_dir: data,
                body_limit,
                workers,
                hot_reload: !no_reload,
                header_read_timeout: header_timeout,
                body_read_timeout: body_timeout,
                max_connections,
                max_header_bytes,
            };
            let server =
                idflow::serve::Server::start(options, idflow::serve::system_clock()).await?;
            eprintln!("idflow listening on http://{}", server.addr);
            shutdown_signal().await;
            eprintln!("shutting down");
            server.stop().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { paths, json } => validate(paths, json),
        Command::Run {
            name,
            input,
            wait,
            timeout,
            server,
            json,
        } => {
            let input: Value = serde_json::from_str(&input).context("--input is not valid JSON")?;
            let client = client::Client::new(&server)?;
            let run_id = client.start_run(&name, &input).await?;
            if !wait {
                if json {
                    println!("{}", serde_json::json!({ "runId": run_id }));
                } else {
                    println!("{run_id}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let run = client
                .wait_run(&run_id, Duration::from_secs(timeout))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                print!("{}", render::run_card(&run, render::colors()));
            }
            Ok(if run["status"] == "succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Runs {
            flow,
            status,
            limit,
            cursor,
            server,
            json,
        } => {
            let client = client::Client::new(&server)?;
            let page = client
                .list_runs(flow.as_deref(), status.as_deref(), limit, cursor.as_deref())
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print!("{}", render::runs_table(&page));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show {
            run_id,
            server,
            json,
        } => {
            let client = client::Client::new(&server)?;
            let run = client.get_run(&run_id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                print!("{}", render::run_card(&run, render::colors()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            paths,
            filter,
            junit,
        } => test_cmd::test(paths, filter, junit),
        Command::Record {
            run_id,
            out,
            server,
        } => test_cmd::record(&run_id, out, &server).await,
        Command::Tables { command } => tables_cmd::run(command).await,
        Command::Import { command } => import_cmd::run(command),
        #[cfg(feature = "aws")]
        Command::Deploy(args) => deploy::run(args).await,
    }
}

fn validate(paths: Vec<PathBuf>, json: bool) -> Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("./flows")]
    } else {
        paths
    };
    let mut diagnostics = Vec::new();
    let mut flows = 0usize;
    for path in &paths {
        if path.is_dir() {
            let project = domain::flowfile::load_dir(path);
            flows += project.flows.iter().filter(|f| f.result.is_ok()).count();
            diagnostics.extend(project.all_diagnostics());
        } else if path.is_file() {
            match domain::flowfile::load_file(path) {
                Ok(_) => flows += 1,
                Err(errors) => diagnostics.extend(errors),
            }
        } else {
            bail!("{} does not exist", path.display());
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "valid": diagnostics.is_empty(), "flows": flows, "errors": diagnostics })
        );
    } else {
        let colors = render::colors_stderr();
        for d in &diagnostics {
            eprintln!("{}{}{}", colors.red, d, colors.reset);
        }
        if diagnostics.is_empty() {
            println!("{flows} flow(s) valid");
        } else {
            eprintln!("{} error(s); {flows} flow(s) valid", diagnostics.len());
        }
    }
    Ok(if diagnostics.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A timeout flag: a duration as flow files write them, more than zero.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    match domain::duration::parse(text)? {
        zero if zero.is_zero() => Err("must be more than zero, such as `10s`".to_owned()),
        duration => Ok(duration),
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IDFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_flags_default_to_the_server_defaults() {
        let cli = Cli::try_parse_from(["idflow", "serve"]).expect("parses");
        let Command::Serve {
            flows,
            addr,
            data,
            body_limit,
            workers,
            header_timeout,
            body_timeout,
            max_connections,
            max_header_bytes,
            no_reload,
            ..
        } = cli.command
        else {
            panic!("not serve: {:?}", cli.command);
        };
        let defaults = idflow::serve::ServeOptions::default();
        assert_eq!(
            (flows, addr, data, body_limit, workers, !no_reload),
            (
                defaults.flows_dir,
                defaults.addr,
                defaults.data_dir,
                defaults.body_limit,
                defaults.workers,
                defaults.hot_reload
            )
        );
        assert_eq!(
            (
                header_timeout,
                body_timeout,
                max_connections,
                max_header_bytes
            ),
            (
                defaults.header_read_timeout,
                defaults.body_read_timeout,
                defaults.max_connections,
                defaults.max_header_bytes
            )
        );
    }

    #[test]
    fn serve_timeouts_are_durations_above_zero() {
        let parse = |flag: &str, value: &str| {
            Cli::try_parse_from(["idflow", "serve", flag, value]).map(|cli| match cli.command {
                Command::Serve {
                    header_timeout,
                    body_timeout,
                    ..
                } => (header_timeout, body_timeout),
                _ => unreachable!("serve parses as serve"),
            })
        };
        assert_eq!(
            parse("--header-timeout", "500ms").unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!(
            parse("--body-timeout", "1m").unwrap().1,
            Duration::from_secs(60)
        );
        for bad in ["0s", "soon", "-1s"] {
            assert!(parse("--header-timeout", bad).is_err(), "{bad}");
        }
    }
}
