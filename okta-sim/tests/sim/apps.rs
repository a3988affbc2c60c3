//! Apps: read, assign users, list assignments.

use serde_json::json;

use crate::support::{Api, array, start};

#[tokio::test]
async fn assigns_users_to_apps_and_lists_them_paged() {
    let (sim, _) = start(4).await;
    let api = Api::ssws(&sim);
    let app = sim.create_app("1Password");
    let read = api.get(&format!("/api/v1/apps/{app}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(
        (
            read.body["label"].as_str(),
            read.body["signOnMode"].as_str()
        ),
        (Some("1Password"), Some("BOOKMARK"))
    );

    for n in 1..=4 {
        let user = sim.user(&format!("user{n}@example.com")).expect("user")["id"]
            .as_str()
            .expect("id")
            .to_string();
        let assigned = api
            .post(
                &format!("/api/v1/apps/{app}/users"),
                json!({ "id": user, "scope": "USER" }),
            )
            .await;
        assert_eq!(assigned.status, 200, "{}", assigned.body);
        assert_eq!(assigned.body["id"], user.as_str());
        assert_eq!(
            assigned.body["credentials"]["userName"],
            format!("user{n}@example.com")
        );
    }
    let (assigned, sizes) = api
        .collect_pages(&format!("/api/v1/apps/{app}/users?limit=3"), array)
        .await;
    assert_eq!((assigned.len(), sizes), (4, vec![3, 1]));
    assert_eq!(sim.app_users(&app).len(), 4);
    assert_eq!(
        sim.events()
            .iter()
            .filter(|e| e["eventType"] == "application.user_membership.add")
            .count(),
        4
    );

    assert_eq!(
        api.post(
            &format!("/api/v1/apps/{app}/users"),
            json!({ "scope": "USER" })
        )
        .await
        .status,
        400
    );
    assert_eq!(
        api.post(
            &format!("/api/v1/apps/{app}/users"),
            json!({ "id": "00unope" })
        )
        .await
        .status,
        404
    );
    assert_eq!(
        api.get("/api/v1/apps/0oanope").await.error_code(),
        "E0000007"
    );
}
