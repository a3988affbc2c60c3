//! `idflow`: the command line. It parses arguments and calls into the crates under `shared/`
//! (serve, validate, test, tables, deploy), the `flopack` crate (import), or the admin API of a
//! running server (run, runs, show, rerun, cancel, record).
//!
//! Exit codes (see [`EXIT_CODES`]): 0 success; 1 what the command checked or ran failed (invalid
//! flows, failing tests, a failed or cancelled run); 2 the command could not do its job (bad
//! arguments, and for the commands that talk to a server, a server that is unreachable or
//! refuses); 3 `run --wait` / `rerun --wait` gave up at `--timeout` while the run goes on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};
use serde_json::Value;

mod client;
#[cfg(feature = "aws")]
mod deploy;
mod import_cmd;
mod render;
mod tables_cmd;
mod test_cmd;

/// Counts allocations per thread so template renders are held to their memory budget, over
/// mimalloc: under `bench/load.sh` glibc's malloc and free were about an eighth of the server's CPU
/// (objects allocated on the HTTP threads are freed on the SQLite writer's and back).
#[global_allocator]
static ALLOCATOR: domain::budget::CountingOver<MiMallocUnaligned> =
    domain::budget::CountingOver(MiMallocUnaligned);

/// mimalloc through its plain entry points wherever the alignment asked for is one every `malloc`
/// block has anyway, as the standard library's own `System` allocator does over `malloc`. The
/// `mimalloc` crate calls the aligned entry points for every allocation, whose path is several
/// times longer: callgrind under `bench/instructions.sh` counted 67 instructions per allocation
/// there, and an async request of `idflow serve` allocates about 900 times.
struct MiMallocUnaligned;

/// The alignment every block of mimalloc's `malloc` has (as glibc's on 64-bit targets) when it is
/// no larger than the block itself.
const MALLOC_ALIGN: usize = 16;

fn plain(layout: std::alloc::Layout) -> bool {
    layout.align() <= MALLOC_ALIGN && layout.align() <= layout.size()
}

// SAFETY: each method hands the caller's request to mimalloc: to its plain entry points only when
// `plain` holds (their blocks are then aligned as asked), otherwise to `MiMalloc`'s aligned ones;
// every block, however allocated, is freed by `mi_free` and resized by `mi_realloc*`, which take
// any mimalloc block.
unsafe impl std::alloc::GlobalAlloc for MiMallocUnaligned {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if plain(layout) {
            // SAFETY: `layout.size()` is non-zero (the `GlobalAlloc` contract).
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: same contract as the caller's.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if plain(layout) {
            // SAFETY: as in `alloc`.
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: same contract as the caller's.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` is a mimalloc block (see the impl's comment).
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let resized = std::alloc::Layout::from_size_align(new_size, layout.align());
        if resized.is_ok_and(plain) {
            // SAFETY: `ptr` is a mimalloc block and `new_size` is non-zero (the contract).
            unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: same contract as the caller's.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

/// What `idflow --help` and `idflow run --help` say about exit codes.
const EXIT_CODES: &str = "Exit codes:
  0  success (run --wait: the run succeeded)
  1  what the command checked or ran failed: invalid flows, failing tests, a failed or cancelled run
  2  the command could not do its job: bad arguments, or (run, rerun, runs, show, cancel, record)
     a server that is unreachable or refuses, such as an unknown flow or run
  3  run --wait / rerun --wait: the run had not ended when --timeout passed (it goes on)";

/// A run the command waited for failed or was cancelled.
const EXIT_FAILED: u8 = 1;
/// The command could not do its job.
const EXIT_ERROR: u8 = 2;
/// `--wait` gave up at `--timeout`; the run goes on.
const EXIT_STILL_RUNNING: u8 = 3;

/// The statuses a run can have, as `runs --status` takes them.
const RUN_STATUSES: [&str; 6] = [
    "queued",
    "running",
    "waiting",
    "succeeded",
    "failed",
    "cancelled",
];

/// Self-hosted identity automation: flows in git, triggered by schedules, Okta events, HTTP calls
/// and other flows, with a step-by-step history.
#[derive(Debug, Parser)]
#[command(name = "idflow", version, after_help = EXIT_CODES)]
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
        /// Treat warnings (such as reading a step that may not have run) as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Writes the JSON Schemas of flow files, idflow.yaml, tables/*.yaml and flow test files
    /// (flow, project, table, flow-test) for editors, or prints one when it is named. A file whose
    /// first line is `# yaml-language-server: $schema=<path to the schema>` is then completed and
    /// checked by yaml-language-server (VS Code's YAML extension and others).
    Schema {
        /// The one schema to print: flow, project, table or flow-test.
        #[arg(value_parser = ["flow", "project", "table", "flow-test"])]
        name: Option<String>,
        /// Directory the four `<name>.schema.json` files are written to.
        #[arg(long, default_value = "./schemas")]
        out: PathBuf,
    },
    /// Runs the language server for flow files, flow tests and idflow.yaml on standard input and
    /// output, for editors (diagnostics as you type, completion, hover); see the README for
    /// VS Code, Neovim and Helix.
    Lsp,
    /// Starts a run of a flow with the given input and prints its id, or with --wait, the run
    /// card by card once it ends.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// The flow's name.
        name: String,
        /// The run input, as JSON.
        #[arg(long, default_value = "{}")]
        input: String,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        server: client::ServerArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists runs, newest first: id, flow, status, trigger, when it was created (UTC) and how
    /// long it took.
    Runs {
        /// Only runs of this flow.
        #[arg(long)]
        flow: Option<String>,
        /// Only runs with this status.
        #[arg(long, value_parser = RUN_STATUSES)]
        status: Option<String>,
        /// Only the helper runs this run started (`flow.call`, `for_each` and `map` over a flow).
        #[arg(long, value_name = "RUN_ID")]
        parent: Option<String>,
        /// Runs per page, from 1 to 500.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        /// Where the previous page ended: the value its `more: --cursor …` line gave.
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        server: client::ServerArgs,
        /// Print the page as JSON (the admin API's answer).
        #[arg(long)]
        json: bool,
    },
    /// Shows one run: a summary of its input, each step with its input, output and error, and its
    /// helper runs.
    Show {
        /// The run's id (from `idflow runs`).
        run_id: String,
        #[command(flatten)]
        server: client::ServerArgs,
        /// Print the run as JSON, the whole input included.
        #[arg(long)]
        json: bool,
    },
    /// Starts a new run of a run's flow with the same input (a failed run, say) and prints its id.
    #[command(after_help = EXIT_CODES)]
    Rerun {
        /// The run to run again.
        run_id: String,
        #[command(flatten)]
        wait: WaitArgs,
        #[command(flatten)]
        server: client::ServerArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancels a run that has not ended (queued, running or waiting); a run that ended is left
    /// as it is (exit 2).
    Cancel {
        /// The run to cancel.
        run_id: String,
        #[command(flatten)]
        server: client::ServerArgs,
        /// Print the cancelled run as JSON.
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
        /// The run to turn into a test case.
        run_id: String,
        /// Test file to create or append to (default: print to stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Prints the completion script of a shell (bash, zsh or fish).
    ///
    /// Install it where the shell looks: `idflow completions bash > /etc/bash_completion.d/idflow`,
    /// `idflow completions zsh > "${fpath[1]}/_idflow"`,
    /// `idflow completions fish > ~/.config/fish/completions/idflow.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `--wait` and `--timeout` of `run` and `rerun`.
#[derive(Debug, clap::Args)]
struct WaitArgs {
    /// Wait for the run to end and print it card by card; the exit code says how it ended.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, in seconds; past it the command exits 3 and the run goes on.
    #[arg(long, default_value_t = 60, requires = "wait")]
    timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The language server is synchronous and owns standard output: no runtime, no logging.
    if matches!(cli.command, Command::Lsp) {
        return match lsp::run_stdio() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
    }
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
    // The commands that talk to a server exit 2 when they cannot, so a script tells "the run
    // failed" (1) from "the run could not be started or followed"; the others keep 1.
    let error_code = if cli.command.talks_to_a_server() {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::FAILURE
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            error_code
        }
    }
}

impl Command {
    fn talks_to_a_server(&self) -> bool {
        matches!(
            self,
            Command::Run { .. }
                | Command::Runs { .. }
                | Command::Show { .. }
                | Command::Rerun { .. }
                | Command::Cancel { .. }
                | Command::Record { .. }
        )
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
            // Traces are set up before logging so that the same subscriber carries both; without an
            // OTLP endpoint there is no exporter at all.
            let traces = idflow::telemetry::Traces::from_env()?;
            init_logging(log_json, traces.as_ref());
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
            if let Some(traces) = traces {
                // After the server stopped, so the spans of the last slices are in the batch; the
                // send blocks, so off the async workers.
                let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate {
            paths,
            json,
            strict,
        } => validate(paths, json, strict),
        Command::Schema { name, out } => schema(name.as_deref(), &out),
        // Served in `main` before the runtime starts.
        Command::Lsp => Ok(ExitCode::SUCCESS),
        Command::Run {
            name,
            input,
            wait,
            server,
            json,
        } => {
            let input: Value = serde_json::from_str(&input).context("--input is not valid JSON")?;
            let client = client::Client::new(&server)?;
            let run_id = client.start_run(&name, &input).await?;
            follow(&client, &run_id, &wait, json).await
        }
        Command::Rerun {
            run_id,
            wait,
            server,
            json,
        } => {
            let client = client::Client::new(&server)?;
            let new_id = client.rerun(&run_id).await?;
            follow(&client, &new_id, &wait, json).await
        }
        Command::Cancel {
            run_id,
            server,
            json,
        } => {
            let client = client::Client::new(&server)?;
            let run = client.cancel(&run_id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                println!("cancelled run {run_id} of {}", render::plain(&run["flow"]));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs {
            flow,
            status,
            parent,
            limit,
            cursor,
            server,
            json,
        } => {
            let client = client::Client::new(&server)?;
            let page = client
                .list_runs(&client::RunFilter {
                    flow: flow.as_deref(),
                    status: status.as_deref(),
                    parent: parent.as_deref(),
                    limit,
                    cursor: cursor.as_deref(),
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
            } else {
                print!("{}", render::runs_table(&page, render::colors()));
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
                let helpers = helper_runs(&client, &run_id).await?;
                print!("{}", render::run_card(&run, &helpers, render::colors()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "idflow", &mut std::io::stdout());
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

/// After a run started: prints its id, or with `--wait`, the run once it ends (exit 0 succeeded,
/// 1 failed or cancelled) or as it stands at `--timeout` (exit 3).
async fn follow(
    client: &client::Client,
    run_id: &str,
    wait: &WaitArgs,
    json: bool,
) -> Result<ExitCode> {
    if !wait.wait {
        if json {
            println!("{}", serde_json::json!({ "runId": run_id }));
        } else {
            println!("{run_id}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (run, ended) = match client
        .wait_run(run_id, Duration::from_secs(wait.timeout))
        .await?
    {
        client::Waited::Ended(run) => (run, true),
        client::Waited::StillGoing(run) => (run, false),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        let helpers = helper_runs(client, run_id).await?;
        print!("{}", render::run_card(&run, &helpers, render::colors()));
    }
    if !ended {
        eprintln!(
            "run {run_id} is still {} after {}s; it goes on (follow it with `idflow show {run_id}`)",
            render::plain(&run["status"]),
            wait.timeout
        );
        return Ok(ExitCode::from(EXIT_STILL_RUNNING));
    }
    Ok(if run["status"] == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// The helper runs `run_id` started, oldest first (the first 100).
async fn helper_runs(client: &client::Client, run_id: &str) -> Result<Vec<Value>> {
    let page = client
        .list_runs(&client::RunFilter {
            parent: Some(run_id),
            limit: 100,
            ..client::RunFilter::default()
        })
        .await?;
    let mut runs = page["runs"].as_array().cloned().unwrap_or_default();
    runs.reverse();
    Ok(runs)
}

/// `idflow schema`: prints the named schema, or writes all four into `out`.
fn schema(name: Option<&str>, out: &std::path::Path) -> Result<ExitCode> {
    use domain::schema::SchemaKind;
    if let Some(name) = name {
        let Some(kind) = SchemaKind::from_name(name) else {
            bail!("unknown schema `{name}`: expected flow, project, table or flow-test");
        };
        print!("{}", kind.render());
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for kind in SchemaKind::ALL {
        let path = out.join(kind.file_name());
        std::fs::write(&path, kind.render())
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(paths: Vec<PathBuf>, json: bool, strict: bool) -> Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("./flows")]
    } else {
        paths
    };
    let mut diagnostics = Vec::new();
    let mut flows = 0usize;
    let mut warnings = Vec::new();
    // The checker's warnings: suspicious but possible, errors under `--strict`.
    let mut checks = Vec::new();
    for path in &paths {
        if path.is_dir() {
            if let Some(stray) = domain::flowfile::misplaced_project_file(path) {
                warnings.push(format!(
                    "{} is not read: the project config belongs inside the flows directory, as {}",
                    stray.display(),
                    path.join(domain::flowfile::PROJECT_FILE).display()
                ));
            }
            let project = domain::flowfile::load_dir(path);
            flows += project.flows.iter().filter(|f| f.result.is_ok()).count();
            diagnostics.extend(project.all_diagnostics());
            checks.extend(project.all_warnings());
        } else if path.is_file() {
            let (result, found) = domain::flowfile::load_file_checked(path);
            match result {
                Ok(_) => flows += 1,
                Err(errors) => diagnostics.extend(errors),
            }
            checks.extend(found);
        } else {
            bail!("{} does not exist", path.display());
        }
    }
    if strict {
        diagnostics.append(&mut checks);
        diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    } else {
        warnings.extend(checks.iter().map(ToString::to_string));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "valid": diagnostics.is_empty(), "flows": flows, "errors": diagnostics, "warnings": warnings })
        );
    } else {
        let colors = render::colors_stderr();
        for warning in &warnings {
            eprintln!("{}warning{}: {warning}", colors.yellow, colors.reset);
        }
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

/// Logs to stderr, filtered by `IDFLOW_LOG`, and the runner's spans to `traces` when export is on.
/// Each has its own filter: `IDFLOW_LOG=warn` quiets the log, not the traces.
fn init_logging(json: bool, traces: Option<&idflow::telemetry::Traces>) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_env("IDFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log redirected to a file or a pipe stays plain.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let format = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let log = if json {
        format.json().with_filter(filter).boxed()
    } else {
        format.with_filter(filter).boxed()
    };
    tracing_subscriber::registry()
        .with(log)
        .with(traces.map(|traces| traces.layer()))
        .init();
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
