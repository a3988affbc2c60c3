//! `/api/v1/users`: read, list (search, filter, q, paging), create, partial update, lifecycle.

use std::ops::Bound;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{bad_cursor, json_body, parse_filter, with_links};
use crate::context::Ctx;
use crate::context::Shared;
use crate::error::ApiError;
use crate::state::{NewUser, UserStatus};

/// `GET /api/v1/users/{idOrLogin}`
pub(crate) async fn get_one(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    shared.org(&ctx, |org| {
        let user = org.find_user(&id)?;
        Ok(axum::Json(org.render_user(user, true)).into_response())
    })
}

/// `GET /api/v1/users` with `search`, `filter`, `q`, `limit`, `after`.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, ApiError> {
    if let Some(q) = ctx.param("q") {
        // `q` is a people-picker prefix match: default limit 10, no paging, no deprovisioned users.
        let limit = ctx.limit(10, 200)?;
        let q = q.to_lowercase();
        let page = shared.org(&ctx, |org| {
            org.users
                .rows
                .values()
                .filter(|u| u.status != UserStatus::Deprovisioned)
                .filter(|u| {
                    ["firstName", "lastName", "email", "login"].iter().any(|k| {
                        u.profile
                            .get(*k)
                            .and_then(Value::as_str)
                            .is_some_and(|v| v.to_lowercase().starts_with(&q))
                    })
                })
                .take(limit)
                .map(|u| org.render_user(u, false))
                .collect::<Vec<_>>()
        });
        return Ok(with_links(Value::Array(page), ctx.links(None, limit)));
    }
    let limit = ctx.limit(200, 200)?;
    let (expression, fold_case) = match (ctx.param("search"), ctx.param("filter")) {
        (Some(search), _) => (Some(parse_filter(search, true)?), true),
        (None, Some(filter)) => (Some(parse_filter(filter, false)?), false),
        (None, None) => (None, false),
    };
    let (page, next) = shared.org(&ctx, |org| {
        let start = match ctx.param("after") {
            Some(after) => Bound::Excluded(org.users.seq(after).ok_or_else(|| bad_cursor(after))?),
            None => Bound::Unbounded,
        };
        let mut page = Vec::with_capacity(limit.min(1024));
        let mut last_id = None;
        let mut more = false;
        for user in org
            .users
            .rows
            .range((start, Bound::Unbounded))
            .map(|(_, u)| u)
        {
            let rendered = org.render_user(user, false);
            let keep = match &expression {
                Some(filter) => filter.matches(&rendered, fold_case),
                // A plain list omits deprovisioned users; search and filter include them.
                None => user.status != UserStatus::Deprovisioned,
            };
            if !keep {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            last_id = Some(user.id.clone());
            page.push(rendered);
        }
        Ok::<_, ApiError>((page, if more { last_id } else { None }))
    })?;
    Ok(with_links(
        Value::Array(page),
        ctx.links(next.as_deref(), limit),
    ))
}

/// `POST /api/v1/users?activate=…`
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let profile = match body.get("profile") {
        Some(Value::Object(profile)) => profile.clone(),
        _ => {
            return Err(ApiError::validation(
                "profile",
                vec!["profile: The field cannot be left blank".into()],
            ));
        }
    };
    let credentials = body.get("credentials");
    let has_password = credentials
        .and_then(|c| c.get("password"))
        .and_then(|p| p.get("value"))
        .is_some_and(|v| v.is_string())
        || credentials
            .and_then(|c| c.get("password"))
            .and_then(|p| p.get("hash"))
            .is_some();
    let provider = credentials
        .and_then(|c| c.get("provider"))
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let group_ids = body
        .get("groupIds")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let new = NewUser {
        profile,
        activate: ctx.flag("activate", true),
        has_password,
        provider,
        group_ids,
    };
    shared.org(&ctx, |org| {
        let seq = org.create_user(ctx.now, &ctx.principal, new)?;
        let user = org.user_by_seq(seq).ok_or_else(ApiError::internal)?;
        Ok(axum::Json(org.render_user(user, true)).into_response())
    })
}

/// `POST /api/v1/users/{id}`: partial update; only the given profile attributes change.
pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let changes = match body.get("profile") {
        Some(Value::Object(profile)) => profile.clone(),
        None => serde_json::Map::new(),
        Some(_) => return Err(ApiError::malformed_body()),
    };
    shared.org(&ctx, |org| {
        let seq = org
            .user_seq(&id)
            .ok_or_else(|| ApiError::not_found(&id, "User"))?;
        if !changes.is_empty() {
            org.update_profile(ctx.now, &ctx.principal, seq, changes)?;
        }
        let user = org.user_by_seq(seq).ok_or_else(ApiError::internal)?;
        Ok(axum::Json(org.render_user(user, true)).into_response())
    })
}

/// `POST /api/v1/users/{id}/lifecycle/{activate|deactivate|suspend|unsuspend}`
pub(crate) async fn lifecycle(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path((id, operation)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let send_email = ctx.flag("sendEmail", operation == "activate");
    shared.org(&ctx, |org| {
        let seq = org.user_seq(&id).ok_or_else(|| ApiError::not_found(&id, "User"))?;
        org.lifecycle(ctx.now, &ctx.principal, seq, &operation)?;
        let body = if operation == "activate" && !send_email {
            // Without the email, Okta hands the activation link to the caller instead.
            let token = org.ids.token(20);
            json!({ "activationUrl": ctx.url(&format!("/welcome/{token}")), "activationToken": token })
        } else {
            json!({})
        };
        Ok(axum::Json(body).into_response())
    })
}
