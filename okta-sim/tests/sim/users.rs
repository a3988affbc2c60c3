//! Users: read, create, partial update, lifecycle, search / filter / q, paging.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::support::{Api, array, ids, start};

fn new_user(login: &str) -> Value {
    json!({ "profile": { "login": login, "email": login, "firstName": "Isaac", "lastName": "Brock", "department": "R&D" } })
}

#[tokio::test]
async fn reads_a_user_by_id_or_login_and_404s_in_oktas_shape() {
    let (sim, _) = start(3).await;
    let api = Api::ssws(&sim);
    let by_login = api.get("/api/v1/users/user2@example.com").await;
    assert_eq!(by_login.status, 200);
    let id = by_login.body["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("00u") && id.len() == 20, "{id}");
    assert_eq!(by_login.body["status"], "ACTIVE");
    assert_eq!(
        by_login.body["_links"]["self"]["href"],
        format!("{}/api/v1/users/{id}", sim.base_url())
    );
    let by_id = api.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(by_id.body["profile"]["login"], "user2@example.com");

    let missing = api.get("/api/v1/users/nobody@example.com").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "E0000007");
    for key in ["errorSummary", "errorLink", "errorId", "errorCauses"] {
        assert!(
            missing.body.get(key).is_some(),
            "error body lacks {key}: {}",
            missing.body
        );
    }
    assert!(
        missing
            .header("x-okta-request-id")
            .is_some_and(|id| !id.is_empty())
    );
}

#[tokio::test]
async fn creates_users_and_refuses_missing_fields_and_duplicate_logins() {
    let (sim, _) = start(0).await;
    let api = Api::ssws(&sim);
    let staged = api
        .post(
            "/api/v1/users?activate=false",
            new_user("isaac@example.com"),
        )
        .await;
    assert_eq!(staged.status, 200, "{}", staged.body);
    assert_eq!(staged.body["status"], "STAGED");
    assert_eq!(staged.body["activated"], Value::Null);

    let mut with_password = new_user("grace@example.com");
    with_password["credentials"] = json!({ "password": { "value": "tlpWENT2m" } });
    let active = api.post("/api/v1/users", with_password).await;
    assert_eq!(active.body["status"], "ACTIVE");
    let provisioned = api
        .post("/api/v1/users?activate=true", new_user("alan@example.com"))
        .await;
    assert_eq!(
        provisioned.body["status"], "PROVISIONED",
        "activation without a password waits for the user"
    );

    let duplicate = api
        .post("/api/v1/users", new_user("ISAAC@example.com"))
        .await;
    assert_eq!(duplicate.status, 400);
    assert_eq!(duplicate.error_code(), "E0000001");
    assert_eq!(
        duplicate.body["errorSummary"],
        "Api validation failed: login"
    );
    assert!(
        duplicate.body["errorCauses"][0]["errorSummary"]
            .as_str()
            .unwrap_or_default()
            .contains("already exists")
    );

    let missing = api
        .post(
            "/api/v1/users",
            json!({ "profile": { "login": "x@example.com" } }),
        )
        .await;
    assert_eq!(missing.status, 400);
    let causes: Vec<&str> = missing.body["errorCauses"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["errorSummary"].as_str())
        .collect();
    assert_eq!(
        causes,
        [
            "email: The field cannot be left blank",
            "firstName: The field cannot be left blank",
            "lastName: The field cannot be left blank"
        ]
    );

    let not_json = api.call("POST", "/api/v1/users", None).await;
    assert_eq!((not_json.status, not_json.error_code()), (400, "E0000003"));
    assert_eq!(
        sim.journal()
            .iter()
            .filter(|e| e.path == "/api/v1/users")
            .count(),
        6
    );
}

#[tokio::test]
async fn partial_update_changes_only_the_given_attributes() {
    let (sim, _) = start(1).await;
    let api = Api::ssws(&sim);
    let before = api.get("/api/v1/users/user1@example.com").await.body;
    let id = before["id"].as_str().expect("id");
    let updated = api
        .post(&format!("/api/v1/users/{id}"), json!({ "profile": { "department": "Research", "nickName": "Ada", "employeeNumber": null } }))
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let profile = &updated.body["profile"];
    assert_eq!(profile["department"], "Research");
    assert_eq!(profile["nickName"], "Ada");
    assert!(
        profile.get("employeeNumber").is_none(),
        "null clears an attribute"
    );
    for unchanged in ["login", "email", "firstName", "lastName"] {
        assert_eq!(
            profile[unchanged], before["profile"][unchanged],
            "{unchanged} must not change"
        );
    }
    let cleared_required = api
        .post(
            &format!("/api/v1/users/{id}"),
            json!({ "profile": { "firstName": null } }),
        )
        .await;
    assert_eq!(
        (cleared_required.status, cleared_required.error_code()),
        (400, "E0000001")
    );
    let unknown = api
        .post("/api/v1/users/00unope", json!({ "profile": {} }))
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn lifecycle_follows_oktas_transition_rules() {
    let (sim, _) = start(0).await;
    let api = Api::ssws(&sim);
    let mut user = new_user("life@example.com");
    user["credentials"] = json!({ "password": { "value": "pw-123456" } });
    let id = api.post("/api/v1/users?activate=false", user).await.body["id"]
        .as_str()
        .expect("id")
        .to_string();

    // (operation, expected status code, expected user status afterwards, expected error code)
    let steps = [
        ("suspend", 400, "STAGED", "E0000001"),
        ("activate", 200, "ACTIVE", ""),
        ("activate", 403, "ACTIVE", "E0000016"),
        ("unsuspend", 400, "ACTIVE", "E0000001"),
        ("suspend", 200, "SUSPENDED", ""),
        ("suspend", 400, "SUSPENDED", "E0000001"),
        ("unsuspend", 200, "ACTIVE", ""),
        ("deactivate", 200, "DEPROVISIONED", ""),
        ("deactivate", 400, "DEPROVISIONED", "E0000001"),
        ("activate", 200, "ACTIVE", ""),
    ];
    for (operation, code, status, error) in steps {
        let answer = api
            .call(
                "POST",
                &format!("/api/v1/users/{id}/lifecycle/{operation}?sendEmail=true"),
                None,
            )
            .await;
        assert_eq!(answer.status, code, "{operation}: {}", answer.body);
        assert_eq!(answer.error_code(), error, "{operation}");
        assert_eq!(
            sim.user(&id).expect("user")["status"],
            status,
            "after {operation}"
        );
    }
    let token = api
        .call(
            "POST",
            &format!("/api/v1/users/{id}/lifecycle/deactivate"),
            None,
        )
        .await;
    assert_eq!(token.status, 200);
    let activation = api
        .call(
            "POST",
            &format!("/api/v1/users/{id}/lifecycle/activate?sendEmail=false"),
            None,
        )
        .await;
    assert!(
        activation.body["activationToken"].is_string(),
        "{}",
        activation.body
    );
    assert_eq!(
        api.call("POST", "/api/v1/users/00unope/lifecycle/suspend", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn search_filter_and_q_select_users() {
    let (sim, _) = start(20).await;
    let api = Api::ssws(&sim);
    let gone = sim.user("user3@example.com").expect("user")["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        api.call(
            "POST",
            &format!("/api/v1/users/{gone}/lifecycle/deactivate"),
            None
        )
        .await
        .status,
        200
    );

    let count = |answer: &crate::support::Answer| array(&answer.body).len();
    let check = |query: &'static str, expected: usize| {
        let api = &api;
        async move {
            let answer = api.get(&format!("/api/v1/users?{query}")).await;
            assert_eq!(answer.status, 200, "{query}: {}", answer.body);
            assert_eq!(count(&answer), expected, "{query}");
        }
    };
    check("", 19).await; // deprovisioned users are left out of a plain list
    check("search=profile.department%20eq%20%22engineering%22", 4).await; // search values ignore case
    check("filter=profile.department%20eq%20%22engineering%22", 0).await; // filter values do not
    check("search=status%20eq%20%22DEPROVISIONED%22", 1).await;
    check("filter=status%20eq%20%22ACTIVE%22", 19).await;
    check("search=profile.login%20sw%20%22user1%22", 11).await; // user1, user10..user19
    check(
        "search=profile.department%20eq%20%22Sales%22%20and%20status%20eq%20%22ACTIVE%22",
        4,
    )
    .await;
    check("search=profile.department%20eq%20%22Sales%22%20or%20profile.department%20eq%20%22Support%22", 8).await;
    check(
        "search=lastUpdated%20gt%20%222020-01-01T00:00:00.000Z%22",
        20,
    )
    .await;
    check("q=grace", 2).await;
    check("q=user1", 10).await; // q defaults to 10 results
    check("q=user1&limit=3", 3).await;

    let bad = api.get("/api/v1/users?search=status%20eq").await;
    assert_eq!((bad.status, bad.error_code()), (400, "E0000031"));
}

#[tokio::test]
async fn paging_follows_link_next_to_the_end_without_duplicates() {
    let (sim, _) = start(25).await;
    let api = Api::ssws(&sim);
    let first = api.get("/api/v1/users?limit=10").await;
    assert_eq!(
        first.self_link().as_deref(),
        Some(format!("{}/api/v1/users?limit=10", sim.base_url()).as_str())
    );
    let next = first.next_link().expect("a next link");
    assert!(
        next.contains("after=00u") && next.contains("limit=10"),
        "{next}"
    );

    let (users, sizes) = api.collect_pages("/api/v1/users?limit=10", array).await;
    assert_eq!(sizes, [10, 10, 5]);
    let unique: HashSet<_> = users
        .iter()
        .map(|u| u["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(unique.len(), 25);

    // Search results page the same way and keep their search parameter.
    let (engineering, sizes) = api
        .collect_pages(
            "/api/v1/users?search=profile.department%20eq%20%22Engineering%22&limit=2",
            array,
        )
        .await;
    assert_eq!(sizes, [2, 2, 1]);
    assert!(
        engineering
            .iter()
            .all(|u| u["profile"]["department"] == "Engineering")
    );
    // A page size that divides the total exactly ends without an empty page.
    let (_, sizes) = api.collect_pages("/api/v1/users?limit=5", array).await;
    assert_eq!(sizes, [5, 5, 5, 5, 5]);
    let over_max = api.get("/api/v1/users?limit=1000").await;
    assert_eq!(ids(&over_max.body).len(), 25);
    assert_eq!(api.get("/api/v1/users?after=00unknown").await.status, 400);
}
