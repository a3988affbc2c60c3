//! Rate limits with reset headers, deterministic fault injection, the journal.

use std::time::Duration;

use okta_sim::{Family, Faults, RateLimit};

use crate::support::{Api, builder, start, t0};

#[tokio::test]
async fn rate_limit_answers_429_with_headers_until_the_window_resets() {
    let (builder, clock) = builder();
    let sim = builder
        .rate_limit(Family::Users, RateLimit::new(3, Duration::from_secs(60)))
        .start()
        .await
        .expect("sim");
    let api = Api::ssws(&sim);
    // t0 is 10:00:00, a minute boundary, so the window ends 60 s later.
    let reset = (t0().timestamp() + 60).to_string();
    for remaining in ["2", "1", "0"] {
        let answer = api.get("/api/v1/users").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-rate-limit-limit"), Some("3"));
        assert_eq!(answer.header("x-rate-limit-remaining"), Some(remaining));
        assert_eq!(answer.header("x-rate-limit-reset"), Some(reset.as_str()));
    }
    let limited = api.get("/api/v1/users").await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.error_code(), "E0000047");
    assert_eq!(limited.header("x-rate-limit-remaining"), Some("0"));
    assert_eq!(limited.header("x-rate-limit-reset"), Some(reset.as_str()));
    assert!(limited.header("x-okta-request-id").is_some());

    // Other families have their own budget.
    assert_eq!(api.get("/api/v1/groups").await.status, 200);
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        api.get("/api/v1/users").await.status,
        429,
        "one second before the reset"
    );
    clock.advance(Duration::from_secs(1));
    let fresh = api.get("/api/v1/users").await;
    assert_eq!(fresh.status, 200);
    assert_eq!(fresh.header("x-rate-limit-remaining"), Some("2"));

    sim.set_rate_limit(Family::Users, RateLimit::new(1, Duration::from_secs(10)));
    assert_eq!(api.get("/api/v1/users").await.status, 200);
    assert_eq!(api.get("/api/v1/users").await.status, 429);
}

#[tokio::test]
async fn faults_follow_a_deterministic_sequence() {
    let (sim, _) = start(1).await;
    let api = Api::ssws(&sim);
    sim.set_faults(Faults {
        throttle_every: Some(3),
        error_every: Some(2),
        ..Faults::default()
    });
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(api.get("/api/v1/users").await.status);
    }
    // Throttling wins where both apply (the 6th request).
    assert_eq!(statuses, [200, 500, 429, 500, 200, 429]);

    sim.set_faults(Faults {
        error_every: Some(1),
        path_prefix: Some("/api/v1/logs".into()),
        ..Faults::default()
    });
    assert_eq!(api.get("/api/v1/users").await.status, 200);
    let failed = api.get("/api/v1/logs").await;
    assert_eq!((failed.status, failed.error_code()), (500, "E0000009"));

    sim.set_faults(Faults {
        latency: Some(Duration::from_millis(30)),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(api.get("/api/v1/users").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(30));
}

#[tokio::test]
async fn journal_records_every_request() {
    let (sim, _) = start(1).await;
    let api = Api::ssws(&sim);
    api.get("/api/v1/users?limit=1&search=status%20eq%20%22ACTIVE%22")
        .await;
    api.post(
        "/api/v1/groups",
        serde_json::json!({ "profile": { "name": "Journaled" } }),
    )
    .await;
    Api::anonymous(&sim).get("/api/v1/users").await;
    api.get("/api/v1/nothing-here").await;

    let journal = sim.journal();
    let summary: Vec<_> = journal
        .iter()
        .map(|e| (e.method.as_str(), e.path.as_str(), e.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", "/api/v1/users", 200),
            ("POST", "/api/v1/groups", 200),
            ("GET", "/api/v1/users", 401),
            ("GET", "/api/v1/nothing-here", 404)
        ]
    );
    assert_eq!(
        journal[0].query.as_deref(),
        Some("limit=1&search=status%20eq%20%22ACTIVE%22")
    );
    assert_eq!(
        journal[0].header("Authorization"),
        Some(sim.ssws_header().as_str())
    );
    assert_eq!(
        journal[1].json().expect("json body")["profile"]["name"],
        "Journaled"
    );
    assert_eq!(journal[1].header("content-type"), Some("application/json"));
    assert_eq!(journal[0].at, t0());
    assert!(journal.iter().all(|e| e.request_id.len() == 27));
    sim.clear_journal();
    assert!(sim.journal().is_empty());
}

#[tokio::test]
async fn journal_capacity_keeps_the_newest_entries() {
    let (builder, _) = builder();
    let sim = builder.journal_capacity(2).start().await.expect("sim");
    let api = Api::ssws(&sim);
    for path in ["/api/v1/users", "/api/v1/groups", "/api/v1/logs"] {
        api.get(path).await;
    }
    let paths: Vec<_> = sim.journal().into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["/api/v1/groups", "/api/v1/logs"]);
}
