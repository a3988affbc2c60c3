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
//! reachable from the network, so a token shorter than 32 characters stops the cold start. Both
//! rules are `idflow serve`'s beyond loopback: [`web::auth::admin_access`] decides the access and
//! [`web::auth::check_admin`] checks each request, for both.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use domain::runner::Runtime;
use lambda_http::request::RequestContext;
use web::auth::{self, AdminExposure, AdminTokenError, VerifiedAdmin};
use web::body::DEFAULT_BODY_LIMIT;
use web::state::ApiState;

/// The routers' state: the runtime, and the admin access of `idflow.yaml`'s admin token resolved
/// once per cold start (through Secrets Manager), if one is configured.
pub async fn state(runtime: Arc<Runtime>) -> Result<ApiState, AdminTokenError> {
    let admin = auth::admin_access(
        runtime.adapter_ports().secrets.as_ref(),
        runtime.project().admin_token.as_ref(),
        AdminExposure::Network,
    )
    .await?;
    Ok(ApiState {
        runtime,
        admin,
        body_limit: DEFAULT_BODY_LIMIT,
    })
}

/// The function's router: invoke, delegated flows, admin API, `/healthz`, JSON fallbacks, every
/// error as JSON; requests API Gateway's JWT authorizer verified are marked so for the admin check.
pub fn app(state: ApiState) -> Router {
    web::router::api_function(state).layer(axum::middleware::from_fn(mark_verified))
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

/// Marks a request API Gateway's JWT authorizer verified as [`VerifiedAdmin`], which the admin
/// check ([`web::auth::check_admin`]) admits; every other request must bear the admin token.
async fn mark_verified(mut request: Request, next: Next) -> Response {
    if let Some(claims) = authorizer_claims(&request) {
        let subject = claims.get("sub").cloned().unwrap_or_default();
        request.extensions_mut().insert(VerifiedAdmin { subject });
    }
    next.run(request).await
}
