//! `/api/v1/apps/{appId}` and its user assignments.

use std::ops::Bound;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{bad_cursor, json_body, with_links};
use crate::context::Ctx;
use crate::context::Shared;
use crate::error::ApiError;
use crate::state::AppAssignment;

/// `GET /api/v1/apps/{appId}`
pub(crate) async fn get_one(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    shared.org(&ctx, |org| {
        Ok(axum::Json(org.render_app(org.find_app(&id)?)).into_response())
    })
}

/// `GET /api/v1/apps/{appId}/users` (default 50, at most 500 per page; `q` prefix on user name).
pub(crate) async fn list_users(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let limit = ctx.limit(50, 500)?;
    let q = ctx.param("q").map(str::to_lowercase);
    let (page, next) = shared.org(&ctx, |org| {
        let app = org.find_app(&id)?;
        let start = match ctx.param("after") {
            Some(after) => Bound::Excluded(org.users.seq(after).ok_or_else(|| bad_cursor(after))?),
            None => Bound::Unbounded,
        };
        let mut matching = app
            .users
            .range((start, Bound::Unbounded))
            .filter(|(_, app_user)| {
                q.as_deref()
                    .is_none_or(|q| app_user.user_name.to_lowercase().starts_with(q))
            });
        let page: Vec<_> = matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        let next = if more {
            page.last()
                .and_then(|(seq, _)| org.user_by_seq(**seq))
                .map(|u| u.id.clone())
        } else {
            None
        };
        let rendered = page
            .into_iter()
            .map(|(seq, app_user)| org.render_app_user(app, *seq, app_user))
            .collect::<Vec<_>>();
        Ok::<_, ApiError>((rendered, next))
    })?;
    Ok(with_links(
        Value::Array(page),
        ctx.links(next.as_deref(), limit),
    ))
}

/// `POST /api/v1/apps/{appId}/users` with an `AppUserAssignRequest` (`id` required).
pub(crate) async fn assign_user(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let Some(user_id) = body.get("id").and_then(Value::as_str).map(str::to_string) else {
        return Err(ApiError::validation(
            "id",
            vec!["id: The field cannot be left blank".into()],
        ));
    };
    let scope = body
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("USER")
        .to_string();
    let user_name = body
        .get("credentials")
        .and_then(|c| c.get("userName"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let profile = body
        .get("profile")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    shared.org(&ctx, |org| {
        let app_seq = org
            .apps
            .seq(&id)
            .ok_or_else(|| ApiError::not_found(&id, "AppInstance"))?;
        let user_seq = org
            .users
            .seq(&user_id)
            .ok_or_else(|| ApiError::not_found(&user_id, "User"))?;
        org.assign_app_user(
            ctx.now,
            &ctx.principal,
            app_seq,
            user_seq,
            AppAssignment {
                scope,
                user_name,
                profile,
            },
        );
        let app = org.apps.rows.get(&app_seq).ok_or_else(ApiError::internal)?;
        let app_user = app.users.get(&user_seq).ok_or_else(ApiError::internal)?;
        Ok(axum::Json(org.render_app_user(app, user_seq, app_user)).into_response())
    })
}
