//! The `api` Lambda: API Gateway HTTP API (payload 2.0) in front of the core's routers.
//!
//! It serves the same routes as `idflow serve`: API endpoint invoke (`/api/flows/{name}/invoke`,
//! authenticated by each flow's own trigger), delegated flows (`/api/delegated/...`, authenticated
//! against the callers of `idflow.yaml`) and the admin API (`/api/flows`, `/api/runs`, ...).
//!
//! # Admin authentication
//! template.yaml puts API Gateway's JWT authorizer on the admin routes. API Gateway validates the
//! token (issuer, audience, signature, expiry) before the function runs and passes the verified
//! claims in `requestContext.authorizer.jwt.claims`; a client cannot set that member, API Gateway
//! writes it. So an admin request that carries those claims is trusted as is. A request without
//! them (a route deployed without the authorizer, or a `cargo lambda invoke` event) must present
//! the `admin.token` of `idflow.yaml` as a bearer token; when no token is configured, it is refused:
//! unlike `idflow serve` on loopback, the admin API of a Lambda is never open. The function is
//! reachable from the network, so a token shorter than 32 characters stops the cold start
//! ([`web::api::admin_token`], the rule `idflow serve` applies beyond loopback).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use domain::runner::Runtime;
use lambda_http::request::RequestContext;
use serde_json::json;
use web::api::{self, AdminExposure, AdminTokenError, ApiError, ApiState, DEFAULT_BODY_LIMIT};

/// The routers' state: the runtime, and the admin token of `idflow.yaml` resolved once per cold
/// start (through Secrets Manager), if one is configured.
pub async fn state(runtime: Arc<Runtime>) -> Result<ApiState, AdminTokenError> {
    let admin_token = api::admin_token(
        runtime.secrets.as_ref(),
        runtime.project().admin_token.as_ref(),
        AdminExposure::Network,
    )
    .await?;
    Ok(ApiState {
        runtime,
        admin_token,
        body_limit: DEFAULT_BODY_LIMIT,
    })
}

/// The function's router: invoke, delegated flows, admin API, `/healthz`, JSON fallbacks, every
/// error as JSON.
pub fn app(state: ApiState) -> Router {
    let mut admin = Router::new();
    for (_, path, handler) in api::admin_routes() {
        admin = admin.route(path, handler);
    }
    let admin = admin
        .route_layer(axum::middleware::from_fn_with_state(
            state.admin_token.clone(),
            require_admin,
        ))
        .with_state(state.clone());
    let router = Router::new()
        .merge(api::invoke_router(state.clone()))
        .merge(web::delegated::delegated_router(state))
        .merge(admin)
        .route(
            "/healthz",
            axum::routing::get(|| async { Json(json!({ "ok": true })) }),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(json!({ "error": { "code": "method_not_allowed", "message": "method not allowed on this route" } })),
            )
        });
    api::json_errors(router)
}

/// The claims API Gateway's JWT authorizer verified for this request, if it ran.
pub fn authorizer_claims(request: &Request) -> Option<&std::collections::HashMap<String, String>> {
    match request.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()
            .map(|jwt| &jwt.claims)
            .filter(|claims| !claims.is_empty()),
        _ => None,
    }
}

/// Admits an admin request verified by API Gateway's JWT authorizer, or bearing the admin token.
async fn require_admin(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(claims) = authorizer_claims(&request) {
        let subject = claims.get("sub").map(String::as_str).unwrap_or("");
        let path = request.uri().path().to_owned();
        tracing::info!(subject, %path, "admin request authorized by API Gateway's JWT authorizer");
        return next.run(request).await;
    }
    let Some(expected) = token else {
        return ApiError::Unauthorized(
            "the admin API needs API Gateway's JWT authorizer (template.yaml) or `admin.token` in idflow.yaml"
                .into(),
        )
        .into_response();
    };
    if !api::bearer_matches(request.headers(), &expected) {
        return ApiError::Unauthorized("a valid admin bearer token is required".into())
            .into_response();
    }
    next.run(request).await
}
