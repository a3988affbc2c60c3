//! The `okta.*` and `oig.*` cards as flows see them: names, fields and outputs. The `connectors`
//! crate runs them (its `okta` module) through the Okta client.

use super::spec::{CardKind, CardSpec, FieldSpec};

/// Records a non-streaming list collects when the step sets no `limit`; more is an error that
/// points at `limit` and `stream` rather than a silent truncation or an unbounded answer.
pub const DEFAULT_MAX_RECORDS: usize = 10_000;

/// The longest message `oig.create_request_message` accepts, in characters.
pub const MAX_MESSAGE_CHARS: usize = 5000;

const CONNECTION: FieldSpec = FieldSpec {
    name: "connection",
    kind: "text",
    required: false,
    doc: "name of the Okta connection in `idflow.yaml` (default `okta`)",
};
const USER: FieldSpec = FieldSpec {
    name: "user",
    kind: "text",
    required: true,
    doc: "the user's id or login",
};
const GROUP: FieldSpec = FieldSpec {
    name: "group",
    kind: "text",
    required: true,
    doc: "the group's id (`00g…`)",
};
const LIMIT: FieldSpec = FieldSpec {
    name: "limit",
    kind: "integer",
    required: false,
    doc: "the most records returned (default: all, up to 10000 unless streamed)",
};
const PAGES: FieldSpec = FieldSpec {
    name: "pages",
    kind: "text",
    required: false,
    doc: "`all` (default: follow every `Link` next page, bounded by `limit`) or `first`",
};
const STREAM: FieldSpec = FieldSpec {
    name: "stream",
    kind: "object",
    required: false,
    doc: "`{ flow, state, concurrency }`: instead of returning the records, runs the helper flow `flow` once per record with inputs `record` and `state`, at most `concurrency` at a time",
};
const SEND_EMAIL: FieldSpec = FieldSpec {
    name: "send_email",
    kind: "boolean",
    required: false,
    doc: "let Okta email the user (Okta's default: true for activation, false for deactivation)",
};

const fn user_card(
    name: &'static str,
    summary: &'static str,
    output: &'static str,
    fields: &'static [FieldSpec],
) -> CardSpec {
    CardSpec::io(name, summary, fields, output)
}

/// The `okta.*` cards.
pub const CARDS: &[CardSpec] = &[
    CardSpec {
        name: "okta.read_user",
        summary: "Reads an Okta user by id or login",
        fields: &[USER, CONNECTION],
        output: "the Okta user object (`id`, `status`, `profile`, ...)",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "okta.find_users",
        summary: "Finds Okta users with a search expression, a filter or a name prefix, or streams them to a helper flow",
        fields: &[
            FieldSpec {
                name: "search",
                kind: "text",
                required: false,
                doc: "Okta search expression, e.g. `profile.department eq \"Sales\"`",
            },
            FieldSpec {
                name: "filter",
                kind: "text",
                required: false,
                doc: "Okta filter expression, e.g. `status eq \"ACTIVE\"` (at most one of `search`, `filter`, `q`)",
            },
            FieldSpec {
                name: "q",
                kind: "text",
                required: false,
                doc: "prefix of first name, last name, email or login",
            },
            LIMIT,
            PAGES,
            STREAM,
            CONNECTION,
        ],
        output: "the list of users (none when streaming)",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "okta.create_user",
        summary: "Creates an Okta user",
        fields: &[
            FieldSpec {
                name: "profile",
                kind: "object",
                required: true,
                doc: "the profile: at least `login`, `email`, `firstName`, `lastName`",
            },
            FieldSpec {
                name: "password",
                kind: "text",
                required: false,
                doc: "an initial password; take it from `secret('…')` or a previous step",
            },
            FieldSpec {
                name: "activate",
                kind: "boolean",
                required: false,
                doc: "activate at once (default true)",
            },
            FieldSpec {
                name: "groups",
                kind: "list",
                required: false,
                doc: "ids of groups to add the user to",
            },
            CONNECTION,
        ],
        output: "the created user",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "okta.update_user",
        summary: "Changes some profile attributes of an Okta user (partial update)",
        fields: &[
            USER,
            FieldSpec {
                name: "profile",
                kind: "object",
                required: true,
                doc: "the attributes to change; the others keep their values",
            },
            CONNECTION,
        ],
        output: "the updated user",
        kind: CardKind::Io,
        open: false,
    },
    user_card(
        "okta.activate_user",
        "Activates an Okta user",
        "`{}`, or `{ activationUrl, activationToken }` when `send_email` is false",
        &[USER, SEND_EMAIL, CONNECTION],
    ),
    user_card(
        "okta.deactivate_user",
        "Deactivates an Okta user",
        "`{}`",
        &[USER, SEND_EMAIL, CONNECTION],
    ),
    user_card(
        "okta.suspend_user",
        "Suspends an active Okta user",
        "`{}`",
        &[USER, CONNECTION],
    ),
    user_card(
        "okta.unsuspend_user",
        "Returns a suspended Okta user to active",
        "`{}`",
        &[USER, CONNECTION],
    ),
    user_card(
        "okta.add_user_to_group",
        "Adds a user to an Okta group (no change if already a member)",
        "`{}`",
        &[USER, GROUP, CONNECTION],
    ),
    user_card(
        "okta.remove_user_from_group",
        "Removes a user from an Okta group",
        "`{}`",
        &[USER, GROUP, CONNECTION],
    ),
    CardSpec {
        name: "okta.list_group_members",
        summary: "Lists the users of an Okta group",
        fields: &[GROUP, LIMIT, CONNECTION],
        output: "the list of users",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "okta.list_user_groups",
        summary: "Lists the groups an Okta user belongs to",
        fields: &[USER, LIMIT, CONNECTION],
        output: "the list of groups",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "okta.assign_user_to_app",
        summary: "Assigns a user to an Okta app",
        fields: &[
            USER,
            FieldSpec {
                name: "app",
                kind: "text",
                required: true,
                doc: "the app's id (`0oa…`)",
            },
            FieldSpec {
                name: "profile",
                kind: "object",
                required: false,
                doc: "app-specific profile attributes of the assignment",
            },
            FieldSpec {
                name: "user_name",
                kind: "text",
                required: false,
                doc: "the user name in the app (`credentials.userName`)",
            },
            CONNECTION,
        ],
        output: "the app user (the assignment)",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "okta.search_system_log",
        summary: "Searches the Okta System Log, or streams the events to a helper flow",
        fields: &[
            FieldSpec {
                name: "filter",
                kind: "text",
                required: false,
                doc: "filter expression, e.g. `eventType eq \"user.session.start\" and outcome.result eq \"FAILURE\"`",
            },
            FieldSpec {
                name: "q",
                kind: "text",
                required: false,
                doc: "keywords that must all appear in the event",
            },
            FieldSpec {
                name: "since",
                kind: "datetime",
                required: false,
                doc: "earliest `published` time (Okta's default: 7 days ago)",
            },
            FieldSpec {
                name: "until",
                kind: "datetime",
                required: false,
                doc: "events published before this time",
            },
            FieldSpec {
                name: "sort_order",
                kind: "text",
                required: false,
                doc: "`ASCENDING` (default) or `DESCENDING`",
            },
            LIMIT,
            PAGES,
            STREAM,
            CONNECTION,
        ],
        output: "the list of events (none when streaming)",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "okta.api",
        summary: "Calls any Okta API endpoint of the org",
        fields: &[
            FieldSpec {
                name: "method",
                kind: "text",
                required: false,
                doc: "`GET` (default), `POST`, `PUT`, `PATCH` or `DELETE`",
            },
            FieldSpec {
                name: "path",
                kind: "text",
                required: true,
                doc: "path relative to the org, e.g. `/api/v1/groups`",
            },
            FieldSpec {
                name: "query",
                kind: "object",
                required: false,
                doc: "query parameters; a list value repeats the parameter, `null` leaves it out",
            },
            FieldSpec {
                name: "body",
                kind: "any",
                required: false,
                doc: "sent as JSON",
            },
            CONNECTION,
        ],
        output: "`{ status, headers, body }`. A status outside 200–299 fails the step with Okta's `errorCode`, `errorSummary`, `errorCauses` and request id as detail",
        kind: CardKind::Io,
        open: false,
    },
];

const REQUEST: FieldSpec = FieldSpec {
    name: "request",
    kind: "text",
    required: true,
    doc: "the access request id: v1 (24 hexadecimal characters) or v2 (`req…`)",
};

/// The `oig.*` cards.
pub const OIG_CARDS: &[CardSpec] = &[
    CardSpec {
        name: "oig.get_request",
        summary: "Reads an Okta Identity Governance access request",
        fields: &[REQUEST, CONNECTION],
        output: "the access request",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "oig.list_requests",
        summary: "Lists Okta Identity Governance access requests",
        fields: &[
            FieldSpec {
                name: "version",
                kind: "text",
                required: false,
                doc: "`v1` (default) or `v2` (requests of request conditions)",
            },
            FieldSpec {
                name: "filter",
                kind: "text",
                required: false,
                doc: "filter expression, e.g. `requestStatus eq \"OPEN\"` (v1) or `status eq \"PENDING\"` (v2)",
            },
            LIMIT,
            CONNECTION,
        ],
        output: "the list of access requests",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "oig.create_request_message",
        summary: "Posts a message on an Okta Identity Governance access request",
        fields: &[
            REQUEST,
            FieldSpec {
                name: "message",
                kind: "text",
                required: true,
                doc: "the message, 1 to 5000 characters",
            },
            CONNECTION,
        ],
        output: "`{}`",
        kind: CardKind::Io,
        open: false,
    },
];
