//! Cards: the registry of every card a flow can use, the pure function cards, the port I/O cards run
//! through ([`CardExecutor`]), and the `table.*` executor.
//!
//! # Layout
//! - [`spec`]: the contract every card follows (specs, errors, the executor port).
//! - [`registry`]: every card's name, fields and output, the single source the validator, the engine
//!   and `docs/flow-reference.md` rely on.
//! - [`fields`]: the one reader of a card's `with:` object every card uses, pure or I/O, so a field
//!   of the wrong shape is reported the same way everywhere.
//! - [`functions`]: the pure cards, one module a family (text, json, object, list, date, number,
//!   boolean, `flow.assign`). They run inside the engine with no I/O.
//! - [`http`], [`okta`], [`slack`], [`email`]: the specs of the I/O cards whose executors live in the
//!   `connectors` crate.
//! - [`crypto`]: `crypto.hmac` and `jwt.sign`, I/O cards so that their key may be a secret; the
//!   `connectors` crate runs them.
//! - [`table`]: the `table.*` cards and their executor over the [`TableStore`](crate::tables::TableStore)
//!   port.
//! - `doc`: the card reference of `docs/flow-reference.md`, generated from the registry.

pub mod crypto;
pub mod doc;
pub mod email;
pub mod fields;
pub mod functions;
pub mod http;
pub mod okta;
pub mod registry;
pub mod slack;
pub mod spec;
pub mod table;

pub use registry::{lookup, registry};
pub use spec::{
    CardCall, CardError, CardExecutor, CardKind, CardSpec, EvalFn, FieldSpec, PureContext,
    PureResult,
};
