//! `/governance/api/v1/requests…` and `/governance/api/v2/requests…`: read, list, post messages.

use std::ops::Bound;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{bad_cursor, json_body, parse_filter, with_links};
use crate::context::Ctx;
use crate::context::Shared;
use crate::error::ApiError;
use crate::governance::sparse;
use crate::state::{Principal, RequestMessage, Table};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

fn table(org: &crate::state::Org, version: Version) -> &Table<Value> {
    match version {
        Version::V1 => &org.requests_v1,
        Version::V2 => &org.requests_v2,
    }
}

fn get(shared: &Shared, ctx: &Ctx, id: &str, version: Version) -> Result<Response, ApiError> {
    shared.org(ctx, |org| {
        let request = table(org, version)
            .get(id)
            .ok_or_else(|| ApiError::not_found(id, "AccessRequest"))?;
        Ok(axum::Json(request.clone()).into_response())
    })
}

/// v2 filters name some attributes by a short name; map them onto the request document.
fn v2_path(name: &str) -> Option<String> {
    match name {
        "requestedFor" => Some("requestedFor.externalId".into()),
        "resourceId" | "resourceType" | "accessScopeId" | "accessScopeType" => {
            Some(format!("requested.{name}"))
        }
        _ => None,
    }
}

fn list(shared: &Shared, ctx: &Ctx, version: Version) -> Result<Response, ApiError> {
    let limit = ctx.limit(20, 200)?;
    let filter = match ctx.param("filter") {
        Some(text) => {
            let parsed = parse_filter(text, false)?;
            Some(if version == Version::V2 {
                parsed.map_paths(&v2_path)
            } else {
                parsed
            })
        }
        None => None,
    };
    let (page, next) = shared.org(ctx, |org| {
        let requests = table(org, version);
        let start = match ctx.param("after") {
            Some(after) => Bound::Excluded(requests.seq(after).ok_or_else(|| bad_cursor(after))?),
            None => Bound::Unbounded,
        };
        let mut matching = requests
            .rows
            .range((start, Bound::Unbounded))
            .map(|(_, r)| r)
            .filter(|r| filter.as_ref().is_none_or(|f| f.matches(r, false)));
        let page: Vec<&Value> = matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        let next = if more {
            page.last()
                .and_then(|r| r.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        } else {
            None
        };
        Ok::<_, ApiError>((page.into_iter().map(sparse).collect::<Vec<_>>(), next))
    })?;
    let here = match &ctx.raw_query {
        Some(query) if !query.is_empty() => format!("{}{}?{query}", ctx.base_url, ctx.path),
        _ => format!("{}{}", ctx.base_url, ctx.path),
    };
    let mut links = json!({ "self": { "href": here } });
    if let Some(after) = &next {
        links["next"] = json!({ "href": ctx.next_url(after, limit) });
    }
    Ok(with_links(
        json!({ "data": page, "_links": links }),
        ctx.links(next.as_deref(), limit),
    ))
}

fn post_message(
    shared: &Shared,
    ctx: &Ctx,
    id: &str,
    body: &[u8],
    version: Version,
) -> Result<Response, ApiError> {
    let body = json_body(body)?;
    let message = match body.get("message") {
        Some(Value::String(text)) if !text.is_empty() && text.chars().count() <= 5000 => {
            text.clone()
        }
        Some(Value::String(text)) if !text.is_empty() => {
            return Err(ApiError::validation(
                "message",
                vec!["message: must be at most 5000 characters".into()],
            ));
        }
        _ => {
            return Err(ApiError::validation(
                "message",
                vec!["message: The field cannot be left blank".into()],
            ));
        }
    };
    shared.org(ctx, |org| {
        if table(org, version).get(id).is_none() {
            return Err(ApiError::not_found(id, "AccessRequest"));
        }
        let posted_by = match &ctx.principal {
            Principal::ApiToken => "ssws".to_string(),
            Principal::Client(client) => client.clone(),
            Principal::System => "system".to_string(),
        };
        org.messages.push(RequestMessage {
            request_id: id.to_string(),
            message,
            created: ctx.now,
            posted_by,
        });
        Ok(StatusCode::CREATED.into_response())
    })
}

/// `GET /governance/api/v1/requests/{requestId}`
pub(crate) async fn get_v1(
    State(s): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    get(&s, &ctx, &id, Version::V1)
}

/// `GET /governance/api/v2/requests/{requestId}`
pub(crate) async fn get_v2(
    State(s): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    get(&s, &ctx, &id, Version::V2)
}

/// `GET /governance/api/v1/requests`
pub(crate) async fn list_v1(
    State(s): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, ApiError> {
    list(&s, &ctx, Version::V1)
}

/// `GET /governance/api/v2/requests`
pub(crate) async fn list_v2(
    State(s): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, ApiError> {
    list(&s, &ctx, Version::V2)
}

/// `POST /governance/api/v1/requests/{requestId}/messages` → 201
pub(crate) async fn message_v1(
    State(s): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    post_message(&s, &ctx, &id, &body, Version::V1)
}

/// `POST /governance/api/v2/requests/{requestId}/messages` → 201
pub(crate) async fn message_v2(
    State(s): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    post_message(&s, &ctx, &id, &body, Version::V2)
}
