//! `/api/v1/groups`: list (q, search, paging), read, create, membership.

use std::ops::Bound;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{bad_cursor, json_body, parse_filter, with_links};
use crate::context::Ctx;
use crate::context::Shared;
use crate::error::ApiError;

/// `GET /api/v1/groups`
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, ApiError> {
    if let Some(q) = ctx.param("q") {
        // Okta: `q` matches the start of the name, is not paged, and defaults to 300 results.
        let limit = ctx.limit(300, 10_000)?;
        let q = q.to_lowercase();
        let page = shared.org(&ctx, |org| {
            org.groups
                .rows
                .values()
                .filter(|g| {
                    g.profile
                        .get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.to_lowercase().starts_with(&q))
                })
                .take(limit)
                .map(|g| org.render_group(g))
                .collect::<Vec<_>>()
        });
        return Ok(with_links(Value::Array(page), ctx.links(None, limit)));
    }
    let limit = ctx.limit(10_000, 10_000)?;
    let expression = match (ctx.param("search"), ctx.param("filter")) {
        (Some(search), _) => Some((parse_filter(search, true)?, true)),
        (None, Some(filter)) => Some((parse_filter(filter, false)?, false)),
        (None, None) => None,
    };
    let (page, next) = shared.org(&ctx, |org| {
        let start = match ctx.param("after") {
            Some(after) => Bound::Excluded(org.groups.seq(after).ok_or_else(|| bad_cursor(after))?),
            None => Bound::Unbounded,
        };
        let mut page = Vec::new();
        let mut last_id = None;
        let mut more = false;
        for group in org
            .groups
            .rows
            .range((start, Bound::Unbounded))
            .map(|(_, g)| g)
        {
            let rendered = org.render_group(group);
            if expression
                .as_ref()
                .is_some_and(|(filter, fold_case)| !filter.matches(&rendered, *fold_case))
            {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            last_id = Some(group.id.clone());
            page.push(rendered);
        }
        Ok::<_, ApiError>((page, if more { last_id } else { None }))
    })?;
    Ok(with_links(
        Value::Array(page),
        ctx.links(next.as_deref(), limit),
    ))
}

/// `GET /api/v1/groups/{id}`
pub(crate) async fn get_one(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    shared.org(&ctx, |org| {
        Ok(axum::Json(org.render_group(org.find_group(&id)?)).into_response())
    })
}

/// `POST /api/v1/groups` with `{profile: {name, description}}`.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let profile = body
        .get("profile")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let name = profile
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string();
    if name.is_empty() {
        return Err(ApiError::validation(
            "name",
            vec!["name: The field cannot be left blank".into()],
        ));
    }
    let description = profile
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    shared.org(&ctx, |org| {
        let taken = org.groups.rows.values().any(|g| g.profile.get("name").and_then(Value::as_str) == Some(name.as_str()));
        if taken {
            return Err(ApiError::validation("name", vec![
                "name: An object with this field already exists in the current organization".into(),
            ]));
        }
        let seq = org.insert_group(ctx.now, &name, &description, "OKTA_GROUP");
        if let Some(group) = org.groups.rows.get_mut(&seq) {
            for (key, value) in profile {
                group.profile.insert(key, value);
            }
        }
        let group = org.groups.rows.get(&seq).ok_or_else(ApiError::internal)?.clone();
        let target = serde_json::json!({ "id": group.id, "type": "UserGroup", "alternateId": "unknown", "displayName": name });
        org.log(ctx.now, &ctx.principal, "group.lifecycle.create", "Create Okta group", vec![target]);
        Ok(axum::Json(org.render_group(&group)).into_response())
    })
}

/// `GET /api/v1/groups/{id}/users` (paged, default 1000).
pub(crate) async fn members(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let limit = ctx.limit(1000, 1000)?;
    let (page, next) = shared.org(&ctx, |org| {
        let group = org.find_group(&id)?;
        let start = match ctx.param("after") {
            Some(after) => Bound::Excluded(org.users.seq(after).ok_or_else(|| bad_cursor(after))?),
            None => Bound::Unbounded,
        };
        let mut members = group
            .members
            .range((start, Bound::Unbounded))
            .filter_map(|seq| org.user_by_seq(*seq));
        let page: Vec<_> = members.by_ref().take(limit).collect();
        let more = members.next().is_some();
        let next = if more {
            page.last().map(|u| u.id.clone())
        } else {
            None
        };
        Ok::<_, ApiError>((
            page.into_iter()
                .map(|u| org.render_user(u, false))
                .collect::<Vec<_>>(),
            next,
        ))
    })?;
    Ok(with_links(
        Value::Array(page),
        ctx.links(next.as_deref(), limit),
    ))
}

/// `PUT /api/v1/groups/{id}/users/{userId}` → 204 (idempotent).
pub(crate) async fn add_member(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path((group, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    change_membership(&shared, &ctx, &group, &user, true)
}

/// `DELETE /api/v1/groups/{id}/users/{userId}` → 204.
pub(crate) async fn remove_member(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path((group, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    change_membership(&shared, &ctx, &group, &user, false)
}

fn change_membership(
    shared: &Shared,
    ctx: &Ctx,
    group: &str,
    user: &str,
    add: bool,
) -> Result<Response, ApiError> {
    shared.org(ctx, |org| {
        let group_seq = org
            .groups
            .seq(group)
            .ok_or_else(|| ApiError::not_found(group, "UserGroup"))?;
        // Okta addresses members by id only, not by login.
        let user_seq = org
            .users
            .seq(user)
            .ok_or_else(|| ApiError::not_found(user, "User"))?;
        let built_in = org
            .groups
            .rows
            .get(&group_seq)
            .is_some_and(|g| g.kind != "OKTA_GROUP");
        if built_in {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "E0000006",
                "You do not have permission to perform the requested action",
            )
            .with_cause("Memberships of built-in and app groups cannot be changed"));
        }
        if add {
            org.add_member_seq(ctx.now, &ctx.principal, group_seq, user_seq);
        } else {
            org.remove_member_seq(ctx.now, &ctx.principal, group_seq, user_seq);
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

/// `GET /api/v1/users/{id}/groups`
pub(crate) async fn user_groups(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    shared.org(&ctx, |org| {
        let seq = org
            .user_seq(&id)
            .ok_or_else(|| ApiError::not_found(&id, "User"))?;
        let groups: Vec<_> = org
            .groups
            .rows
            .values()
            .filter(|g| g.members.contains(&seq))
            .map(|g| org.render_group(g))
            .collect();
        Ok(with_links(Value::Array(groups), ctx.links(None, 0)))
    })
}
