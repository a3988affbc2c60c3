//! OIG access requests: v1 and v2 reads, lists and messages.

use std::collections::HashSet;

use okta_sim::RequestSeed;
use serde_json::json;

use crate::support::{Api, start};

fn data(body: &serde_json::Value) -> Vec<serde_json::Value> {
    body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn reads_seeded_requests_and_stores_messages_v1_and_v2() {
    let (sim, _) = start(2).await;
    let api = Api::ssws(&sim);
    let requester = sim.user("user1@example.com").expect("user")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let v1 = sim.seed_request_v1(RequestSeed {
        subject: "Badge access to Building 4".into(),
        requester: Some(requester.clone()),
        fields: vec![("Business justification".into(), "New lab".into())],
        ..RequestSeed::default()
    });
    assert!(
        v1.len() == 24 && v1.chars().all(|c| c.is_ascii_hexdigit()),
        "{v1}"
    );
    let v2 = sim.seed_request_v2(RequestSeed {
        requester: Some(requester.clone()),
        ..RequestSeed::default()
    });
    assert!(v2.starts_with("req") && v2.len() == 20, "{v2}");

    let read = api.get(&format!("/governance/api/v1/requests/{v1}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["subject"], "Badge access to Building 4");
    assert_eq!(read.body["requesterUserIds"][0], requester.as_str());
    assert_eq!(read.body["requesterFieldValues"][0]["value"], "New lab");
    let read = api.get(&format!("/governance/api/v2/requests/{v2}")).await;
    assert_eq!(read.body["requestedFor"]["externalId"], requester.as_str());
    assert_eq!(read.body["status"], "PENDING");

    for (version, id) in [("v1", &v1), ("v2", &v2)] {
        let posted = api
            .post(
                &format!("/governance/api/{version}/requests/{id}/messages"),
                json!({ "message": format!("done by idflow ({version})") }),
            )
            .await;
        assert_eq!(posted.status, 201, "{version}: {}", posted.body);
        let empty = api
            .post(
                &format!("/governance/api/{version}/requests/{id}/messages"),
                json!({ "message": "" }),
            )
            .await;
        assert_eq!((empty.status, empty.error_code()), (400, "E0000001"));
        let too_long = api
            .post(
                &format!("/governance/api/{version}/requests/{id}/messages"),
                json!({ "message": "x".repeat(5001) }),
            )
            .await;
        assert_eq!(too_long.status, 400);
        let messages = sim.request_messages(id);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].message, format!("done by idflow ({version})"));
        assert_eq!(messages[0].posted_by, "ssws");
    }
    assert_eq!(
        api.get(&format!("/governance/api/v2/requests/{v1}"))
            .await
            .status,
        404,
        "ids do not cross versions"
    );
    let missing = api
        .post(
            "/governance/api/v1/requests/000000000000000000000000/messages",
            json!({ "message": "hi" }),
        )
        .await;
    assert_eq!((missing.status, missing.error_code()), (404, "E0000007"));
}

#[tokio::test]
async fn lists_requests_with_filters_and_body_and_header_paging() {
    let (sim, _) = start(2).await;
    let api = Api::ssws(&sim);
    let other = sim.user("user2@example.com").expect("user")["id"]
        .as_str()
        .expect("id")
        .to_string();
    for n in 0..5 {
        let status = if n % 2 == 0 { "OPEN" } else { "RESOLVED" };
        sim.seed_request_v1(RequestSeed {
            subject: format!("request {n}"),
            status: Some(status.into()),
            ..RequestSeed::default()
        });
        sim.seed_request_v2(RequestSeed {
            requested_for: (n == 4).then(|| other.clone()),
            ..RequestSeed::default()
        });
    }
    for version in ["v1", "v2"] {
        let mut url = format!("/governance/api/{version}/requests?limit=2");
        let mut seen = Vec::new();
        loop {
            let page = api.get(&url).await;
            assert_eq!(page.status, 200, "{}", page.body);
            assert!(page.body["_links"]["self"]["href"].is_string());
            seen.extend(
                data(&page.body)
                    .iter()
                    .map(|r| r["id"].as_str().unwrap_or_default().to_string()),
            );
            let body_next = page.body["_links"]["next"]["href"]
                .as_str()
                .map(str::to_string);
            assert_eq!(body_next, page.next_link(), "body and Link header agree");
            match body_next {
                Some(next) => url = next,
                None => break,
            }
        }
        assert_eq!(seen.len(), 5, "{version}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5, "{version}");
    }
    let open = api
        .get("/governance/api/v1/requests?filter=requestStatus%20eq%20%22OPEN%22")
        .await;
    assert_eq!(data(&open.body).len(), 3);
    let for_other = api
        .get(&format!(
            "/governance/api/v2/requests?filter=requestedFor%20eq%20%22{other}%22"
        ))
        .await;
    assert_eq!(data(&for_other.body).len(), 1);
}
