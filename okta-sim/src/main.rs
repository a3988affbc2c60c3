//! `okta-sim`: runs the Okta simulator until Ctrl-C and prints its URL.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use okta_sim::{ClientKey, Family, Faults, OAuthClient, RateLimit, Sim};

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
    /// Another accepted SSWS token (the default token is always accepted).
    #[arg(long = "api-token")]
    api_tokens: Vec<String>,
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
    match builder.start().await {
        Ok(sim) => {
            println!("okta-sim listening on {}", sim.base_url());
            println!("Authorization: {}", sim.ssws_header());
            sim.serve_until_ctrl_c().await;
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("okta-sim: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
