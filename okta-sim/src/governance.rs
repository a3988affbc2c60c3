//! Okta Identity Governance access requests (v1 and v2) as tests seed them and the API shows
//! them (`request-full-api-compatible` for v1, `request-full-2` for v2 in the governance spec).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::clock::okta_time;
use crate::state::Org;

/// What a seeded access request looks like; every field has a sensible default.
#[derive(Debug, Clone, Default)]
pub struct RequestSeed {
    /// v1 `subject` (the request's title).
    pub subject: String,
    /// The requester's user id (`00u…`); defaults to the org's admin.
    pub requester: Option<String>,
    /// v2 `requestedFor`; defaults to the requester.
    pub requested_for: Option<String>,
    /// v1 `requestStatus` (default `OPEN`) or v2 `status` (default `PENDING`).
    pub status: Option<String>,
    /// v2 `requested.resourceId` (20 characters); defaults to the first app, or a made-up id.
    pub resource_id: Option<String>,
    /// The requester's answers: (prompt, value) pairs, as `requesterFieldValues`.
    pub fields: Vec<(String, String)>,
}

pub(crate) fn seed_v1(org: &mut Org, now: DateTime<Utc>, seed: RequestSeed) -> String {
    let (seq, id) = org.next_request_v1_seq();
    let requester = org.user_id_or_admin(seed.requester.as_deref());
    let fields: Vec<Value> = seed
        .fields
        .iter()
        .map(|(prompt, value)| {
            json!({ "id": org.ids.uuid(), "prompt": prompt, "required": true, "type": "TEXT", "value": value })
        })
        .collect();
    let subject = if seed.subject.is_empty() {
        "Access request".to_string()
    } else {
        seed.subject
    };
    let request = json!({
        "id": id,
        "type": "ACCESS_REQUEST",
        "subject": subject,
        "requestTypeId": org.request_type_id,
        "requesterUserIds": [requester],
        "requesterFieldValues": fields,
        "requestStatus": seed.status.unwrap_or_else(|| "OPEN".into()),
        "resolved": Value::Null,
        "created": okta_time(now),
        "createdBy": requester,
        "lastUpdated": okta_time(now),
        "lastUpdatedBy": requester,
        "permalinkId": seq,
        "approvals": [],
        "actions": Value::Null,
        "_links": {
            "self": { "href": org.request_link(&format!("/governance/api/v1/requests/{id}")) },
            "requestType": { "href": org.request_link(&format!("/governance/api/v1/request-types/{}", org.request_type_id)) },
        },
    });
    org.requests_v1.insert(seq, id.clone(), request);
    id
}

pub(crate) fn seed_v2(org: &mut Org, now: DateTime<Utc>, seed: RequestSeed) -> String {
    let (seq, id) = org.next_request_v2_seq();
    let requester = org.user_id_or_admin(seed.requester.as_deref());
    let requested_for = seed.requested_for.unwrap_or_else(|| requester.clone());
    let resource_id = seed
        .resource_id
        .or_else(|| org.apps.rows.values().next().map(|a| a.id.clone()))
        .unwrap_or_else(|| org.ids.okta("0oa"));
    let entry_id = org.ids.okta("cen");
    let fields: Vec<Value> = seed
        .fields
        .iter()
        .map(|(label, value)| json!({ "id": org.ids.uuid(), "label": label, "type": "TEXT", "value": value }))
        .collect();
    let request = json!({
        "id": id,
        "created": okta_time(now),
        "createdBy": requester,
        "lastUpdated": okta_time(now),
        "lastUpdatedBy": requester,
        "status": seed.status.unwrap_or_else(|| "PENDING".into()),
        "resolved": Value::Null,
        "requested": { "entryId": entry_id, "resourceId": resource_id, "resourceType": "APPLICATION" },
        "requestedBy": { "externalId": requester, "type": "OKTA_USER" },
        "requestedFor": { "externalId": requested_for, "type": "OKTA_USER" },
        "requesterFieldValues": fields,
        "_links": {
            "self": { "href": org.request_link(&format!("/governance/api/v2/requests/{id}")) },
            "catalogEntry": { "href": org.request_link(&format!("/governance/api/v2/catalogs/default/entries/{entry_id}")) },
        },
    });
    org.requests_v2.insert(seq, id.clone(), request);
    id
}

/// The list form of a request: the full form without the detail the spec leaves to `GET {id}`.
pub(crate) fn sparse(request: &Value) -> Value {
    let mut sparse = request.clone();
    if let Some(map) = sparse.as_object_mut() {
        for detail in [
            "approvals",
            "actions",
            "requesterFieldValues",
            "requestApproval",
            "riskAssessment",
        ] {
            map.remove(detail);
        }
    }
    sparse
}
