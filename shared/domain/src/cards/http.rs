//! `http.request` as flows see it: fields and output. The `connectors` crate runs it.

use super::spec::{CardKind, CardSpec, FieldSpec};

/// The HTTP cards.
pub const CARDS: &[CardSpec] = &[CardSpec {
    name: "http.request",
    summary: "Calls any HTTP API",
    fields: &[
        FieldSpec {
            name: "method",
            kind: "text",
            required: false,
            doc: "`GET` (default), `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS`",
        },
        FieldSpec {
            name: "url",
            kind: "text",
            required: true,
            doc: "`http://` or `https://` URL. Loopback, private, link-local (cloud metadata) and this host's addresses are refused unless `egress.allow` in `idflow.yaml` lists them or a connection names them",
        },
        FieldSpec {
            name: "headers",
            kind: "object",
            required: false,
            doc: "request headers; values are texts, numbers or booleans",
        },
        FieldSpec {
            name: "query",
            kind: "object",
            required: false,
            doc: "query parameters added to the URL; a list value repeats the parameter, `null` leaves it out",
        },
        FieldSpec {
            name: "body",
            kind: "any",
            required: false,
            doc: "an object or list is sent as JSON; text is sent as is (`content-type: text/plain` unless you set one)",
        },
        FieldSpec {
            name: "form",
            kind: "object",
            required: false,
            doc: "instead of `body`: sent as `application/x-www-form-urlencoded` (OAuth token endpoints)",
        },
        FieldSpec {
            name: "auth",
            kind: "object",
            required: false,
            doc: "`{ type: bearer, token }`, `{ type: basic, username, password }` or `{ type: header, name, value }` or `{ type: client_credentials, token_url, client_id, client_secret, scope, audience, client_auth: basic | body }` (OAuth 2.0, token cached until it expires); take the values from `secret('…')`",
        },
    ],
    output: "`{ status, headers, body }`: `body` is parsed JSON when the response is JSON, otherwise text (`null` when empty). A status outside 200–299 fails the step with the body as error detail; a destination the egress policy refuses fails it with `egress_denied` before anything is sent",
    kind: CardKind::Io,
    open: false,
}];
