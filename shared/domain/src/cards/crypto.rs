//! `crypto.hmac` and `jwt.sign` as flows see them: fields and output. The `connectors` crate runs
//! them.
//!
//! They compute rather than call a service, but they are I/O cards on purpose: a signing key is a
//! secret, and `secret('…')` may only go into the fields of I/O cards, whose secret-derived input
//! is masked in history and checkpoints and rendered again for every attempt. A pure card's input
//! is kept as it is, so a key could not be given to one. What they answer (a MAC, a signed token)
//! is not the key and cannot give it back; it is kept like any card output (see the cards' docs).

use super::spec::{CardSpec, FieldSpec};

/// The signing cards.
pub const CARDS: &[CardSpec] = &[
    CardSpec::io(
        "crypto.hmac",
        "Computes an HMAC (SHA-2) of a message with a secret key",
        &[
            FieldSpec::required(
                "key",
                "text",
                "the secret key, usually `{{ secret('…') }}`; masked in history",
            ),
            FieldSpec::required("message", "text", "the text to authenticate"),
            FieldSpec::optional(
                "algorithm",
                "text",
                "`sha256` (default), `sha384` or `sha512`",
            ),
            FieldSpec::optional(
                "key_encoding",
                "text",
                "how the key is written: `text` (default, its UTF-8 bytes), `hex` or `base64`",
            ),
            FieldSpec::optional(
                "encoding",
                "text",
                "how the MAC is written: `hex` (default, lower case), `base64` or `base64url` (no padding)",
            ),
        ],
        "the MAC as text; it does not reveal the key and is kept in history like any output",
    ),
    CardSpec::io(
        "jwt.sign",
        "Encodes and signs a JSON Web Token",
        &[
            FieldSpec::required(
                "key",
                "text",
                "the signing key, usually `{{ secret('…') }}`: a PEM private key (RSA or EC) for `RS*`, `PS*` and `ES*`, the shared secret for `HS*`; masked in history",
            ),
            FieldSpec::optional(
                "algorithm",
                "text",
                "`RS256` (default), `RS384`, `RS512`, `PS256`, `PS384`, `PS512`, `ES256`, `ES384`, `HS256`, `HS384` or `HS512`",
            ),
            FieldSpec::optional(
                "claims",
                "object",
                "the payload's claims (`scope`, custom claims, …)",
            ),
            FieldSpec::optional("issuer", "text", "the `iss` claim"),
            FieldSpec::optional("subject", "text", "the `sub` claim"),
            FieldSpec::optional("audience", "text", "the `aud` claim"),
            FieldSpec::optional("jwt_id", "text", "the `jti` claim"),
            FieldSpec::optional(
                "expires_in",
                "integer",
                "seconds until the token expires (`exp`); none by default",
            ),
            FieldSpec::optional(
                "not_before",
                "integer",
                "seconds until the token becomes valid (`nbf`)",
            ),
            FieldSpec::optional(
                "no_timestamp",
                "boolean",
                "leave out `iat` (default false: `iat` is the time of signing)",
            ),
            FieldSpec::optional("key_id", "text", "the header's `kid`"),
        ],
        "the signed token (compact form); a bearer credential until it expires, kept in history like any output, so give it a short `expires_in` or use `history: errors`",
    ),
];
