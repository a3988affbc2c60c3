//! `email.send` as flows see it: fields and output. The `connectors` crate runs it.

use super::spec::{CardKind, CardSpec, FieldSpec};

/// The email cards.
pub const CARDS: &[CardSpec] = &[CardSpec {
    name: "email.send",
    summary: "Sends an email (SMTP locally, Amazon SES in AWS)",
    fields: &[
        FieldSpec {
            name: "to",
            kind: "any",
            required: true,
            doc: "recipients: an address (`ada@example.com`, `Ada Lovelace <ada@example.com>`), several separated by commas, or a list",
        },
        FieldSpec {
            name: "cc",
            kind: "any",
            required: false,
            doc: "copy recipients, like `to`",
        },
        FieldSpec {
            name: "bcc",
            kind: "any",
            required: false,
            doc: "blind copy recipients, like `to`",
        },
        FieldSpec {
            name: "subject",
            kind: "text",
            required: true,
            doc: "the subject line (line breaks become spaces)",
        },
        FieldSpec {
            name: "body",
            kind: "text",
            required: false,
            doc: "the plain-text body",
        },
        FieldSpec {
            name: "text",
            kind: "text",
            required: false,
            doc: "the plain-text body, another name for `body`",
        },
        FieldSpec {
            name: "html",
            kind: "text",
            required: false,
            doc: "an HTML body; with a plain-text body too, mail clients pick the one they show",
        },
        FieldSpec {
            name: "attachments",
            kind: "any",
            required: false,
            doc: "`{ filename, content, content_type }` or a list of them: `content` is text (such as `table.export_csv`'s output); `content_type` defaults from the file name (`text/csv` for `.csv`). At most 10 MiB in all",
        },
        FieldSpec {
            name: "reply_to",
            kind: "text",
            required: false,
            doc: "where replies go (default: the connection's `reply_to`, else the sender)",
        },
        FieldSpec {
            name: "connection",
            kind: "text",
            required: false,
            doc: "name of the email connection in `idflow.yaml` (default `email`): `{ from, smtp: { host, port, tls: starttls | tls | none, username, password } }` or `{ from, ses: { region } }`",
        },
    ],
    output: "`{ message_id, recipients }`: the message's id and how many recipients it went to",
    kind: CardKind::Io,
    open: false,
}];
