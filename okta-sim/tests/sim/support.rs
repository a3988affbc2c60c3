//! Shared helpers: start a simulator on a manual clock, call it, read Link headers.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use okta_sim::{ManualClock, Sim, SimBuilder, SimHandle};
use reqwest::header::HeaderMap;
use serde_json::Value;

/// The instant every test's clock starts at.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0)
        .single()
        .expect("valid date")
}

/// A builder on a manual clock stopped at [`t0`].
pub fn builder() -> (SimBuilder, ManualClock) {
    let clock = ManualClock::new(t0());
    (Sim::builder().clock(Arc::new(clock.clone())), clock)
}

/// A started simulator with `users` seeded users.
pub async fn start(users: usize) -> (SimHandle, ManualClock) {
    let (builder, clock) = builder();
    let sim = builder.seed_users(users).start().await.expect("sim starts");
    (sim, clock)
}

/// An answered request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The URL of the `rel="next"` Link header, if any.
    pub fn next_link(&self) -> Option<String> {
        link(&self.headers, "next")
    }

    /// The URL of the `rel="self"` Link header, if any.
    pub fn self_link(&self) -> Option<String> {
        link(&self.headers, "self")
    }

    pub fn error_code(&self) -> &str {
        self.body["errorCode"].as_str().unwrap_or_default()
    }
}

pub fn link(headers: &HeaderMap, rel: &str) -> Option<String> {
    let wanted = format!("rel=\"{rel}\"");
    headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|value| {
            let (url, params) = value.split_once(';')?;
            params.contains(&wanted).then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
}

/// Calls the simulator with an `Authorization` value.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub authorization: Option<String>,
}

impl Api {
    pub fn ssws(sim: &SimHandle) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.base_url().to_string(),
            authorization: Some(sim.ssws_header()),
        }
    }

    pub fn anonymous(sim: &SimHandle) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.base_url().to_string(),
            authorization: None,
        }
    }

    pub fn with_authorization(sim: &SimHandle, authorization: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: sim.base_url().to_string(),
            authorization: Some(authorization.to_string()),
        }
    }

    pub async fn call(&self, method: &str, path_or_url: &str, body: Option<&Value>) -> Answer {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, url)
            .header("accept", "application/json");
        if let Some(authorization) = &self.authorization {
            request = request.header("authorization", authorization);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request reaches the sim");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, Some(&body)).await
    }

    /// Follows `rel="next"` from `path` to the end; returns every item and the pages' sizes.
    pub async fn collect_pages(
        &self,
        path: &str,
        items_of: impl Fn(&Value) -> Vec<Value>,
    ) -> (Vec<Value>, Vec<usize>) {
        let mut url = path.to_string();
        let mut items = Vec::new();
        let mut sizes = Vec::new();
        for _ in 0..1000 {
            let page = self.get(&url).await;
            assert_eq!(page.status, 200, "{url}: {:?}", page.body);
            let page_items = items_of(&page.body);
            sizes.push(page_items.len());
            items.extend(page_items);
            match page.next_link() {
                Some(next) => {
                    assert!(
                        next.starts_with(&self.base),
                        "next link {next} must be absolute to the sim"
                    );
                    url = next;
                }
                None => return (items, sizes),
            }
        }
        panic!("paging did not end after 1000 pages");
    }
}

/// The items of a JSON array body.
pub fn array(body: &Value) -> Vec<Value> {
    body.as_array().cloned().unwrap_or_default()
}

/// The ids of the items of a JSON array body.
pub fn ids(body: &Value) -> Vec<String> {
    array(body)
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect()
}
