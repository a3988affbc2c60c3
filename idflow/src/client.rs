//! A small client of the admin API, used by `run`, `runs`, `show`, `rerun`, `cancel` and `record`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Where the server is and how to authenticate.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Base URL of the idflow API.
    #[arg(long, env = "IDFLOW_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Admin bearer token (when the server has one configured).
    #[arg(long, env = "IDFLOW_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The admin API's client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(args: &ServerArgs) -> Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(45))
            .build()?;
        Ok(Client {
            http,
            base: args.server.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<Value> {
        let response = builder
            .send()
            .await
            .with_context(|| format!("cannot reach the idflow server at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no details");
            bail!("server answered {status}: {message}");
        }
        Ok(body)
    }

    pub async fn start_run(&self, flow: &str, input: &Value) -> Result<String> {
        let body = self
            .send(
                self.request(reqwest::Method::POST, &format!("/api/flows/{flow}/runs"))
                    .json(input),
            )
            .await?;
        body["runId"]
            .as_str()
            .map(str::to_owned)
            .context("server did not return a run id")
    }

    pub async fn get_run(&self, id: &str) -> Result<Value> {
        self.send(self.request(reqwest::Method::GET, &format!("/api/runs/{id}")))
            .await
    }

    /// Starts a new run with the input of run `id`; returns the new run's id.
    pub async fn rerun(&self, id: &str) -> Result<String> {
        let body = self
            .send(self.request(reqwest::Method::POST, &format!("/api/runs/{id}/rerun")))
            .await?;
        body["runId"]
            .as_str()
            .map(str::to_owned)
            .context("server did not return a run id")
    }

    /// Cancels run `id`; returns the run as it now stands.
    pub async fn cancel(&self, id: &str) -> Result<Value> {
        self.send(self.request(reqwest::Method::POST, &format!("/api/runs/{id}/cancel")))
            .await
    }

    pub async fn list_runs(&self, filter: &RunFilter<'_>) -> Result<Value> {
        let mut query: Vec<(&str, String)> = vec![("limit", filter.limit.to_string())];
        for (name, value) in [
            ("flow", filter.flow),
            ("status", filter.status),
            ("parent", filter.parent),
            ("cursor", filter.cursor),
        ] {
            if let Some(value) = value {
                query.push((name, value.to_owned()));
            }
        }
        self.send(
            self.request(reqwest::Method::GET, "/api/runs")
                .query(&query),
        )
        .await
    }

    /// Waits for the run to end with the server's long poll (`?wait=`), in rounds of up to 30 s;
    /// after `timeout`, returns the run as it stands.
    pub async fn wait_run(&self, id: &str, timeout: Duration) -> Result<Waited> {
        let started = Instant::now();
        loop {
            let left = timeout.saturating_sub(started.elapsed()).as_secs().min(30);
            let path = format!("/api/runs/{id}?wait={left}");
            let run = self.send(self.request(reqwest::Method::GET, &path)).await?;
            if matches!(
                run["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            ) {
                return Ok(Waited::Ended(run));
            }
            if left == 0 {
                return Ok(Waited::StillGoing(run));
            }
        }
    }
}

/// What `wait_run` saw.
pub enum Waited {
    /// The run ended (succeeded, failed or cancelled).
    Ended(Value),
    /// The timeout passed first; the run goes on.
    StillGoing(Value),
}

/// Which runs `list_runs` asks for.
#[derive(Debug, Default)]
pub struct RunFilter<'a> {
    pub flow: Option<&'a str>,
    pub status: Option<&'a str>,
    /// Only the helper runs this run started.
    pub parent: Option<&'a str>,
    pub limit: u32,
    pub cursor: Option<&'a str>,
}
