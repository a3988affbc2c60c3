//! `slack.post_message` as flows see it: fields and output. The `connectors` crate runs it.

use super::spec::{CardKind, CardSpec, FieldSpec};

/// The Slack cards.
pub const CARDS: &[CardSpec] = &[CardSpec {
    name: "slack.post_message",
    summary: "Posts a message to a Slack channel",
    fields: &[
        FieldSpec {
            name: "channel",
            kind: "text",
            required: false,
            doc: "channel id or name (`C0123…`, `#identity-alerts`); required with a bot token, ignored by a webhook (it posts to its own channel)",
        },
        FieldSpec {
            name: "text",
            kind: "text",
            required: false,
            doc: "the message (Slack `mrkdwn`); with `blocks`, the notification text. `text` or `blocks` is required",
        },
        FieldSpec {
            name: "blocks",
            kind: "list",
            required: false,
            doc: "Block Kit blocks, as Slack documents them",
        },
        FieldSpec {
            name: "thread_ts",
            kind: "text",
            required: false,
            doc: "reply in the thread of this message (`ts` of an earlier post); bot token only",
        },
        FieldSpec {
            name: "connection",
            kind: "text",
            required: false,
            doc: "name of the Slack connection in `idflow.yaml` (default `slack`): `{ token: \"env:…\" }` for a bot token or `{ webhook: \"env:…\" }` for an incoming webhook",
        },
    ],
    output: "with a bot token `{ ok, channel, ts }` (`ts` identifies the message, for `thread_ts`); with a webhook `{ ok }`",
    kind: CardKind::Io,
    open: false,
}];
