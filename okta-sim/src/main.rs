//! `okta-sim`: runs the Okta simulator until Ctrl-C and prints its URL; with `--demo`, the demo
//! org, with `--event-hook`, a hook that receives its events as they happen, and with
//! `--slack-sink`, a stand-in for the Slack webhook the demo flows post to.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use okta_sim::{
    ClientKey, DEFAULT_API_TOKEN, Family, Faults, OAuthClient, RateLimit, Sim, SimHandle,
    WebhookSink,
};
use serde_json::Value;

/// A local Okta org for tests, benchmarks and demos.
#[derive(Debug, Parser)]
#[command(name = "okta-sim", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    addr: SocketAddr,
    /// Active users to create at start (user1@example.com …).
    #[arg(long, default_value_t = 0)]
    seed_users: usize,
    /// Okta groups to create at start.
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Bookmark apps to create at start.
    #[arg(long = "app")]
    apps: Vec<String>,
    /// Seed for deterministic ids.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The org's SSWS API token, which requests must carry (default `00sim-default-api-token`).
    /// Taken from OKTA_API_TOKEN when set, so idflow's `env:OKTA_API_TOKEN` and the simulator
    /// agree on one value.
    #[arg(long, env = "OKTA_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Another accepted SSWS token. Repeatable.
    #[arg(long = "api-token")]
    api_tokens: Vec<String>,
    /// Start with the demo org: eleven people, five groups (one is "No-Code Builders"), four apps,
    /// three access requests, and a System Log with a few days of history, the last day's sign-ins
    /// (failed ones included), a lockout and a breached credential. Its live activity (a new hire
    /// activated, group additions, a breached credential, new access requests) is logged once
    /// the --event-hook is verified, or at start without one.
    #[arg(long)]
    demo: bool,
    /// An event hook to deliver every System Log event to as it is logged, such as
    /// `http://127.0.0.1:8080/hooks/okta`. Verified first, and again every second until it answers
    /// (so idflow may start after the simulator).
    #[arg(long, requires = "event_hook_secret")]
    event_hook: Option<String>,
    /// The event hook's Authorization header value (idflow's `hooks.okta.secret`).
    #[arg(long, env = "OKTA_EVENT_HOOK_SECRET", hide_env_values = true)]
    event_hook_secret: Option<String>,
    /// Also listen here as the Slack incoming webhook the demo flows post to (their
    /// `vars.slackWebhook`, `127.0.0.1:8026`), printing each message.
    #[arg(long)]
    slack_sink: Option<SocketAddr>,
    /// A family's budget, e.g. `users=600/60s` or `logs=5/1s` (families: users, groups, apps,
    /// logs, governance, token, other). Repeatable.
    #[arg(long = "rate-limit", value_parser = parse_rate_limit)]
    rate_limits: Vec<(Family, RateLimit)>,
    /// An OAuth service app, `CLIENT_ID=path/to/public-key.pem` (or a `.json` JWK). Repeatable.
    #[arg(long = "oauth-client")]
    oauth_clients: Vec<String>,
    /// Require DPoP for the OAuth apps given with --oauth-client.
    #[arg(long)]
    require_dpop: bool,
    /// Delay every response by this many milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Answer every Nth request with 500.
    #[arg(long)]
    error_every: Option<u64>,
    /// Answer every Nth request with 429.
    #[arg(long)]
    throttle_every: Option<u64>,
    /// Journal entries kept in memory (the newest ones).
    #[arg(long, default_value_t = 10_000)]
    journal_capacity: usize,
}

fn parse_rate_limit(text: &str) -> Result<(Family, RateLimit), String> {
    let (family, limit) = text
        .split_once('=')
        .ok_or("expected FAMILY=COUNT/WINDOW, e.g. users=600/60s")?;
    Ok((family.parse()?, limit.parse()?))
}

fn load_client(spec: &str, require_dpop: bool) -> Result<OAuthClient, String> {
    let (client_id, path) = spec.split_once('=').ok_or("expected CLIENT_ID=PATH")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let key = if path.ends_with(".json") {
        ClientKey::Jwk(
            serde_json::from_str(&text).map_err(|e| format!("{path} is not a JWK: {e}"))?,
        )
    } else {
        ClientKey::Pem(text)
    };
    Ok(OAuthClient::new(client_id, key).require_dpop(require_dpop))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut builder = Sim::builder()
        .addr(args.addr)
        .seed(args.seed)
        .seed_users(args.seed_users);
    if let Some(token) = &args.token {
        builder = builder.token(token.clone());
    }
    if args.demo {
        builder = builder.demo();
    }
    for group in args.groups {
        builder = builder.group(group);
    }
    for app in args.apps {
        builder = builder.app(app);
    }
    for token in args.api_tokens {
        builder = builder.api_token(token);
    }
    for (family, limit) in args.rate_limits {
        builder = builder.rate_limit(family, limit);
    }
    for spec in &args.oauth_clients {
        match load_client(spec, args.require_dpop) {
            Ok(client) => builder = builder.oauth_client(client),
            Err(message) => {
                eprintln!("okta-sim: --oauth-client {spec}: {message}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    builder = builder.faults(Faults {
        latency: args.latency_ms.map(Duration::from_millis),
        error_every: args.error_every,
        throttle_every: args.throttle_every,
        path_prefix: None,
    });
    let sim = match builder.start().await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("okta-sim: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("okta-sim listening on {}", sim.base_url());
    // Only the well-known default is printed: a token given by the user may be a real one.
    if sim.api_token() == DEFAULT_API_TOKEN {
        println!("Authorization: {}", sim.ssws_header());
    } else {
        println!("Authorization: SSWS <the token of --token or OKTA_API_TOKEN>");
    }
    if args.demo {
        println!("{}", demo_summary(&sim));
    }
    let _sink = match args.slack_sink {
        Some(addr) => match WebhookSink::start(addr, print_slack_message).await {
            Ok(sink) => {
                println!(
                    "slack webhook sink listening on http://{}",
                    sink.local_addr()
                );
                Some(sink)
            }
            Err(error) => {
                eprintln!("okta-sim: --slack-sink: {error}");
                return std::process::ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let activity = async {
        match (&args.event_hook, &args.event_hook_secret) {
            (Some(url), Some(secret)) => run_event_hook(&sim, url, secret, args.demo).await,
            _ => {
                if args.demo {
                    let events = sim.play_demo_activity();
                    println!("demo activity: {} events logged", events.len());
                }
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = activity => {}
    }
    sim.shutdown().await;
    std::process::ExitCode::SUCCESS
}

/// One line about the demo org, so a user knows what is there to find.
fn demo_summary(sim: &SimHandle) -> String {
    let events = sim.events();
    let day_ago = chrono::Utc::now() - chrono::Duration::hours(24);
    let failed = events
        .iter()
        .filter(|e| e["eventType"] == "user.session.start" && e["outcome"]["result"] == "FAILURE")
        .filter(|e| {
            e["published"]
                .as_str()
                .and_then(|p| chrono::DateTime::parse_from_rfc3339(p).ok())
                .is_some_and(|p| p > day_ago)
        })
        .count();
    format!(
        "demo org: people like ada.lovelace@example.com, groups like \"No-Code Builders\", {} System Log events ({failed} failed sign-ins in the last 24 hours)",
        events.len()
    )
}

fn print_slack_message(path: &str, message: Value) {
    let text = message["text"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| message.to_string());
    println!("slack {path}: {text}");
}

/// Verifies the hook (again every second until it answers), plays the demo's activity, then
/// reports each delivery until the process ends.
async fn run_event_hook(sim: &SimHandle, url: &str, secret: &str, demo: bool) {
    let mut waiting = false;
    loop {
        match sim.verify_event_hook(url, secret).await {
            Ok(()) => break,
            Err(error) => {
                if !waiting {
                    println!("event hook {url}: not verified yet ({error}); trying every second");
                    waiting = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    println!("event hook {url}: verified; delivering every event from now on");
    let mut forwarder = sim.forward_events(url, secret);
    if demo {
        let events = sim.play_demo_activity();
        println!("demo activity: {} events logged", events.len());
    }
    while let Some(batch) = forwarder.next_report().await {
        match batch.outcome {
            Ok(status) => println!(
                "event hook: delivered {} event{} ({status})",
                batch.events,
                if batch.events == 1 { "" } else { "s" }
            ),
            Err(error) => println!(
                "event hook: {} event{} not delivered after {} attempts: {error}",
                batch.events,
                if batch.events == 1 { "" } else { "s" },
                batch.attempts
            ),
        }
    }
}
