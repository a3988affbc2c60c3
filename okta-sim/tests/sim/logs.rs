//! The System Log: recorded and injected events, filters, ordering, bounded and polling paging.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::support::{Api, array, start};

#[tokio::test]
async fn state_changes_are_logged_and_filterable() {
    let (sim, clock) = start(0).await;
    let api = Api::ssws(&sim);
    let mut body = json!({ "profile": { "login": "ada@example.com", "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace" } });
    body["credentials"] = json!({ "password": { "value": "pw-123456" } });
    let user = api.post("/api/v1/users", body).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();
    clock.advance(Duration::from_secs(60));
    let group = sim.create_group("Admins", "");
    assert_eq!(
        api.call("PUT", &format!("/api/v1/groups/{group}/users/{user}"), None)
            .await
            .status,
        204
    );
    let access_request = sim.inject_event(json!({
        "eventType": "access.request.create",
        "displayMessage": "Access request created",
        "target": [{ "id": user, "type": "User" }],
        "debugContext": { "debugData": { "accessRequestId": "6581c5f3a7b1f6c1a8d5b2e0" } },
    }));
    sim.inject_event(json!({
        "eventType": "user.session.start",
        "displayMessage": "User login to Okta",
        "outcome": { "result": "FAILURE", "reason": "INVALID_CREDENTIALS" },
        "actor": { "id": user, "type": "User", "alternateId": "ada@example.com", "displayName": "Ada Lovelace" },
    }));

    let all = api.get("/api/v1/logs?until=2026-01-16T00:00:00Z").await;
    let types: Vec<_> = array(&all.body)
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "user.lifecycle.create",
            "user.lifecycle.activate",
            "group.user_membership.add",
            "access.request.create",
            "user.session.start"
        ]
    );
    let created = &all.body[0];
    assert_eq!(created["published"], "2026-01-15T10:00:00.000Z");
    assert_eq!(created["target"][0]["alternateId"], "ada@example.com");
    assert_eq!(created["version"], "0");
    assert!(created["uuid"].as_str().is_some_and(|u| u.len() == 36));
    let request_id = sim
        .journal()
        .iter()
        .find(|e| e.method == "POST")
        .map(|e| e.request_id.clone())
        .expect("journal");
    assert_eq!(
        created["transaction"]["id"],
        request_id.as_str(),
        "events carry the request id that caused them"
    );

    let check = |query: &'static str, expected: Vec<&'static str>| {
        let api = &api;
        async move {
            // A bounded query: `since` defaults to seven days before `until`.
            let query = if query.contains("until=") {
                query.to_string()
            } else {
                format!("until=2026-01-16T00:00:00Z&{query}")
            };
            let answer = api.get(&format!("/api/v1/logs?{query}")).await;
            assert_eq!(answer.status, 200, "{query}: {}", answer.body);
            let types: Vec<String> = array(&answer.body)
                .iter()
                .map(|e| e["eventType"].as_str().unwrap_or_default().to_string())
                .collect();
            assert_eq!(types, expected, "{query}");
        }
    };
    check(
        "filter=eventType%20eq%20%22group.user_membership.add%22",
        vec!["group.user_membership.add"],
    )
    .await;
    check(
        "filter=eventType%20eq%20%22user.session.start%22%20and%20outcome.result%20eq%20%22FAILURE%22",
        vec!["user.session.start"],
    )
    .await;
    check("filter=target.id%20eq%20%22nobody%22", vec![]).await;
    check(
        "filter=debugContext.debugData.accessRequestId%20eq%20%226581c5f3a7b1f6c1a8d5b2e0%22",
        vec!["access.request.create"],
    )
    .await;
    check("q=login%20okta", vec!["user.session.start"]).await;
    check(
        "since=2026-01-15T10:00:30Z",
        vec![
            "group.user_membership.add",
            "access.request.create",
            "user.session.start",
        ],
    )
    .await;
    check(
        "since=2026-01-15T09:00:00Z&until=2026-01-15T10:00:30Z",
        vec!["user.lifecycle.create", "user.lifecycle.activate"],
    )
    .await;
    check(
        "sortOrder=DESCENDING&limit=2",
        vec!["user.session.start", "access.request.create"],
    )
    .await;
    let by_target = api.get(&format!("/api/v1/logs?since=2026-01-01T00:00:00Z&until=2030-01-01T00:00:00Z&filter=target.id%20eq%20%22{user}%22")).await;
    assert_eq!(array(&by_target.body).len(), 4);
    assert!(
        sim.events()
            .iter()
            .any(|e| e["uuid"] == access_request.as_str())
    );
    assert_eq!(api.get("/api/v1/logs?since=yesterday").await.status, 400);
}

#[tokio::test]
async fn bounded_queries_page_to_the_end_without_duplicates() {
    let (sim, clock) = start(0).await;
    for n in 0..23 {
        // Several events share a timestamp, which the cursor must not lose or repeat.
        if n % 4 == 0 {
            clock.advance(Duration::from_millis(1500));
        }
        sim.inject_event(
            json!({ "eventType": "user.session.start", "displayMessage": format!("event {n}") }),
        );
    }
    let api = Api::ssws(&sim);
    let (events, sizes) = api
        .collect_pages(
            "/api/v1/logs?since=2026-01-15T00:00:00Z&until=2026-01-16T00:00:00Z&limit=5",
            array,
        )
        .await;
    assert_eq!(sizes, [5, 5, 5, 5, 3]);
    let messages: Vec<_> = events
        .iter()
        .map(|e| e["displayMessage"].as_str().unwrap_or_default().to_string())
        .collect();
    let expected: Vec<_> = (0..23).map(|n| format!("event {n}")).collect();
    assert_eq!(messages, expected);
    let unique: HashSet<_> = events.iter().map(|e| e["uuid"].to_string()).collect();
    assert_eq!(unique.len(), 23);
}

#[tokio::test]
async fn polling_always_offers_next_and_picks_up_new_events() {
    let (sim, clock) = start(0).await;
    let api = Api::ssws(&sim);
    sim.inject_event(json!({ "eventType": "user.session.start", "displayMessage": "first" }));
    let first = api
        .get("/api/v1/logs?since=2026-01-15T00:00:00Z&limit=10")
        .await;
    assert_eq!(array(&first.body).len(), 1);
    let next = first.next_link().expect("polling keeps a next link");
    let empty = api.get(&next).await;
    assert!(array(&empty.body).is_empty());
    let still_next = empty
        .next_link()
        .expect("an empty polling page still has next");
    clock.advance(Duration::from_secs(5));
    sim.inject_event(json!({ "eventType": "user.session.start", "displayMessage": "second" }));
    let later = api.get(&still_next).await;
    let messages: Vec<_> = array(&later.body)
        .iter()
        .map(|e| e["displayMessage"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(messages, ["second"]);
}
