//! [`ApiState`]: what every route shares.

use std::sync::Arc;

use domain::runner::Runtime;

use crate::auth::AdminAccess;

/// What the routers share.
#[derive(Clone)]
pub struct ApiState {
    pub runtime: Arc<Runtime>,
    /// Who the admin routes admit.
    pub admin: AdminAccess,
    /// The largest request body read.
    pub body_limit: usize,
}
