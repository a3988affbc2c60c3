//! Groups: list, read, create, membership, a user's groups.

use std::collections::HashSet;

use serde_json::json;

use crate::support::{Api, array, ids, start};

#[tokio::test]
async fn membership_changes_answer_204_and_show_everywhere() {
    let (sim, _) = start(5).await;
    let api = Api::ssws(&sim);
    let group = sim.create_group("No-Code Builders", "people who build flows");
    let user = sim.user("user1@example.com").expect("user")["id"]
        .as_str()
        .expect("id")
        .to_string();

    let add = api
        .call("PUT", &format!("/api/v1/groups/{group}/users/{user}"), None)
        .await;
    assert_eq!(add.status, 204);
    assert_eq!(add.body, serde_json::Value::Null);
    // PUT is idempotent and logs only the real change.
    assert_eq!(
        api.call("PUT", &format!("/api/v1/groups/{group}/users/{user}"), None)
            .await
            .status,
        204
    );
    let members = api.get(&format!("/api/v1/groups/{group}/users")).await;
    assert_eq!(ids(&members.body), std::slice::from_ref(&user));
    let groups = api.get(&format!("/api/v1/users/{user}/groups")).await;
    let names: Vec<_> = array(&groups.body)
        .iter()
        .map(|g| {
            g["profile"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["Everyone", "No-Code Builders"]);

    let added: Vec<_> = sim
        .events()
        .into_iter()
        .filter(|e| e["eventType"] == "group.user_membership.add")
        .collect();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["target"][0]["id"], user.as_str());
    assert_eq!(added[0]["target"][1]["type"], "UserGroup");
    assert_eq!(added[0]["target"][1]["displayName"], "No-Code Builders");
    assert_eq!(added[0]["actor"]["type"], "User");

    assert_eq!(
        api.call(
            "DELETE",
            &format!("/api/v1/groups/{group}/users/{user}"),
            None
        )
        .await
        .status,
        204
    );
    assert!(sim.group_members(&group).is_empty());
    assert!(
        sim.events()
            .iter()
            .any(|e| e["eventType"] == "group.user_membership.remove")
    );

    // Unknown ids are 404s; the built-in Everyone group cannot be edited.
    assert_eq!(
        api.call("PUT", &format!("/api/v1/groups/00gnope/users/{user}"), None)
            .await
            .status,
        404
    );
    assert_eq!(
        api.call(
            "PUT",
            &format!("/api/v1/groups/{group}/users/00unope"),
            None
        )
        .await
        .status,
        404
    );
    let everyone = sim.group_id("Everyone").expect("Everyone");
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/api/v1/groups/{everyone}/users/{user}"),
            None
        )
        .await
        .status,
        403
    );
}

#[tokio::test]
async fn group_members_page_by_link_next() {
    let (sim, _) = start(7).await;
    let api = Api::ssws(&sim);
    let everyone = sim.group_id("Everyone").expect("Everyone");
    let (members, sizes) = api
        .collect_pages(&format!("/api/v1/groups/{everyone}/users?limit=3"), array)
        .await;
    assert_eq!(sizes, [3, 3, 1]);
    let unique: HashSet<_> = members.iter().map(|m| m["id"].to_string()).collect();
    assert_eq!(unique.len(), 7);
}

#[tokio::test]
async fn lists_searches_reads_and_creates_groups() {
    let (builder, _) = crate::support::builder();
    let sim = builder
        .group("Engineering")
        .group("Engineering Managers")
        .group("Sales")
        .start()
        .await
        .expect("sim");
    let api = Api::ssws(&sim);
    let all = api.get("/api/v1/groups").await;
    assert_eq!(array(&all.body).len(), 4);
    assert_eq!(all.body[0]["type"], "BUILT_IN");
    assert_eq!(array(&api.get("/api/v1/groups?q=eng").await.body).len(), 2);
    assert_eq!(
        array(
            &api.get("/api/v1/groups?search=type%20eq%20%22OKTA_GROUP%22")
                .await
                .body
        )
        .len(),
        3
    );
    assert_eq!(
        array(
            &api.get("/api/v1/groups?search=profile.name%20eq%20%22Sales%22")
                .await
                .body
        )
        .len(),
        1
    );
    let (_, sizes) = api.collect_pages("/api/v1/groups?limit=3", array).await;
    assert_eq!(sizes, [3, 1]);

    let created = api
        .post(
            "/api/v1/groups",
            json!({ "profile": { "name": "Ops", "description": "on call" } }),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["id"].as_str().expect("id");
    assert!(id.starts_with("00g"));
    let read = api.get(&format!("/api/v1/groups/{id}")).await;
    assert_eq!(read.body["profile"]["description"], "on call");
    assert_eq!(
        api.post("/api/v1/groups", json!({ "profile": { "name": "Ops" } }))
            .await
            .status,
        400
    );
    assert_eq!(
        api.get("/api/v1/groups/00gnope").await.error_code(),
        "E0000007"
    );
}
