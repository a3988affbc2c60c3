//! Other connectors' actions as `http.request` recipes against the vendor's documented API, and
//! the few that map onto an idflow card (`email.send`) or HTTP response.
//!
//! Every vendor's base URL is a variable in `idflow.yaml` (`vars.<vendor>_base_url`), so a tenant
//! specific host (a Shopify store, a Kandji subdomain) is one edit, and its credential is a secret
//! reference (`secret('<vendor>-token')`) the user fills in.

use serde_json::Value;

use super::{Converted, Cx, Gap, Val, loop_over_helper};
use crate::expr::{Out, Shape};
use crate::flow::{Step, StepKind, Tv};
use crate::pack::Card;

/// How a vendor's API authenticates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A token in this header.
    Header(&'static str),
    /// OAuth 2.0 client credentials (Microsoft Graph).
    MicrosoftGraph,
    /// Whatever the HTTP connection was set up with (not exported): a bearer token by default.
    Unknown,
}

/// A vendor: where its API is and how it authenticates.
#[derive(Debug, Clone, Copy)]
pub struct Vendor {
    pub module: &'static str,
    pub title: &'static str,
    /// The documented base URL, or a placeholder for tenant-specific hosts.
    pub base: &'static str,
    pub auth: Auth,
    /// The environment variable the secret reference names.
    pub env: &'static str,
    pub docs: &'static str,
}

/// The vendors the recipes call.
pub const VENDORS: &[Vendor] = &[
    Vendor {
        module: "openai",
        title: "OpenAI",
        base: "https://api.openai.com/v1",
        auth: Auth::Bearer,
        env: "OPENAI_API_KEY",
        docs: "https://platform.openai.com/docs/api-reference",
    },
    Vendor {
        module: "box",
        title: "Box",
        base: "https://api.box.com/2.0",
        auth: Auth::Bearer,
        env: "BOX_TOKEN",
        docs: "https://developer.box.com/reference/",
    },
    Vendor {
        module: "github",
        title: "GitHub",
        base: "https://api.github.com",
        auth: Auth::Bearer,
        env: "GITHUB_TOKEN",
        docs: "https://docs.github.com/en/rest",
    },
    Vendor {
        module: "googledirectory",
        title: "Google Workspace Admin",
        base: "https://admin.googleapis.com",
        auth: Auth::Bearer,
        env: "GOOGLE_ACCESS_TOKEN",
        docs: "https://developers.google.com/admin-sdk/directory/reference/rest",
    },
    Vendor {
        module: "googledrive",
        title: "Google Drive",
        base: "https://admin.googleapis.com",
        auth: Auth::Bearer,
        env: "GOOGLE_ACCESS_TOKEN",
        docs: "https://developers.google.com/admin-sdk/data-transfer/reference/rest",
    },
    Vendor {
        module: "googlesheets",
        title: "Google Sheets",
        base: "https://sheets.googleapis.com/v4",
        auth: Auth::Bearer,
        env: "GOOGLE_ACCESS_TOKEN",
        docs: "https://developers.google.com/sheets/api/reference/rest",
    },
    Vendor {
        module: "marketo",
        title: "Marketo",
        base: "https://YOUR-MUNCHKIN-ID.mktorest.com",
        auth: Auth::Bearer,
        env: "MARKETO_ACCESS_TOKEN",
        docs: "https://developers.marketo.com/rest-api/",
    },
    Vendor {
        module: "office365admin",
        title: "Microsoft Graph",
        base: "https://graph.microsoft.com/v1.0",
        auth: Auth::MicrosoftGraph,
        env: "MICROSOFT_CLIENT_SECRET",
        docs: "https://learn.microsoft.com/graph/api/overview",
    },
    Vendor {
        module: "shopify",
        title: "Shopify Admin",
        base: "https://YOUR-SHOP.myshopify.com/admin/api/2024-01",
        auth: Auth::Header("X-Shopify-Access-Token"),
        env: "SHOPIFY_ACCESS_TOKEN",
        docs: "https://shopify.dev/docs/api/admin-rest",
    },
    Vendor {
        module: "kandji",
        title: "Kandji",
        base: "https://YOUR-SUBDOMAIN.api.kandji.io/api/v1",
        auth: Auth::Bearer,
        env: "KANDJI_API_TOKEN",
        docs: "https://api-docs.kandji.io/",
    },
    Vendor {
        module: "oktaprivilegedaccess",
        title: "Okta Privileged Access",
        base: "https://YOUR-TEAM.pam.okta.com/v1/teams/YOUR-TEAM",
        auth: Auth::Bearer,
        env: "OPA_TOKEN",
        docs: "https://developer.okta.com/docs/api/openapi/opa/",
    },
    Vendor {
        module: "auth0",
        title: "Auth0 Management",
        base: "https://YOUR-TENANT.auth0.com/api/v2",
        auth: Auth::Bearer,
        env: "AUTH0_TOKEN",
        docs: "https://auth0.com/docs/api/management/v2",
    },
    Vendor {
        module: "httpfunctions",
        title: "HTTP",
        base: "",
        auth: Auth::Unknown,
        env: "HTTP_TOKEN",
        docs: "",
    },
    Vendor {
        module: "filefunctions",
        title: "Files",
        base: "",
        auth: Auth::Unknown,
        env: "HTTP_TOKEN",
        docs: "",
    },
];

/// The vendor of a connector, when the recipes know it.
pub fn vendor(module: &str) -> Option<&'static Vendor> {
    VENDORS.iter().find(|v| v.module == module)
}

/// Where a value in a recipe comes from.
///
/// Written as text in the recipe tables: `Key` is the card input `Key` (in any group; `Group/Key`
/// for one group), `=json` a literal, and anything with `{…}` a template whose `{Key}` parts are
/// inputs (`{b64:Key}` base64-encodes, `{url:Key}` URL-encodes, `{join:Key}` joins a list with
/// commas).
type Source = &'static str;

/// An `http.request` recipe for one connector action.
#[derive(Debug, Clone, Copy)]
pub struct Recipe {
    pub module: &'static str,
    pub action: &'static str,
    pub method: &'static str,
    /// Appended to the vendor's base URL (a template, see [`Source`]).
    pub path: Source,
    pub query: &'static [(&'static str, Source)],
    pub headers: &'static [(&'static str, Source)],
    /// Body fields (dotted paths nest); empty for no body.
    pub body: &'static [(&'static str, Source)],
    /// Where the card's outputs are in the response body: the object they are read from (`""`
    /// for the body itself), and fields whose API name differs from the snake case of the Okta
    /// name. `@status` reads the HTTP status.
    pub from: &'static str,
    pub outputs: &'static [(&'static str, &'static str)],
    /// An approximation to report whenever the recipe is used (empty when there is none).
    pub note: &'static str,
}

const fn recipe(
    module: &'static str,
    action: &'static str,
    method: &'static str,
    path: Source,
) -> Recipe {
    Recipe {
        module,
        action,
        method,
        path,
        query: &[],
        headers: &[],
        body: &[],
        from: "",
        outputs: &[],
        note: "",
    }
}

/// The recipes.
pub const RECIPES: &[Recipe] = &[
    Recipe {
        body: &[
            ("model", "model"),
            ("messages", "messages"),
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("n", "n"),
            ("stop", "stop"),
            ("max_tokens", "max_tokens"),
            ("presence_penalty", "presence_penalty"),
            ("frequency_penalty", "frequency_penalty"),
            ("user", "user"),
        ],
        outputs: &[("raw_output", "")],
        ..recipe(
            "openai",
            "createChatCompletion",
            "POST",
            "/chat/completions",
        )
    },
    Recipe {
        body: &[
            ("login", "Login"),
            ("name", "Name"),
            ("role", "Role"),
            ("job_title", "Job Title"),
            ("address", "Address"),
            ("phone", "Phone Number"),
            ("language", "Language"),
            ("status", "Status"),
            ("timezone", "Timezone"),
            ("can_see_managed_users", "Can See Managed Users"),
            (
                "is_exempt_from_device_limits",
                "Is Exempt From Device Limits",
            ),
            (
                "is_exempt_from_login_verification",
                "Is Exempt From Login Verification",
            ),
            (
                "is_external_collab_restricted",
                "Is External Collab Restricted",
            ),
            ("is_sync_enabled", "Is Synced Enabled"),
        ],
        outputs: &[
            ("User ID", "id"),
            ("Space Allotted", "space_amount"),
            ("Avatar URL", "avatar_url"),
            ("Is Sync Enabled", "is_sync_enabled"),
            ("Notification Email", "notification_email"),
        ],
        note: "the allotted space is left to Box's default",
        ..recipe("box", "createNewUser", "POST", "/users")
    },
    Recipe {
        headers: &[("As-User", "User ID")],
        body: &[("name", "Personal Folder Name"), ("parent.id", "=\"0\"")],
        outputs: &[
            ("Personal Box Folder ID", "id"),
            ("Folder Name", "name"),
            ("Personal Folder Owner", "owned_by.login"),
        ],
        note: "the folder is created as the user (As-User); desktop sync is not set",
        ..recipe("box", "createPersonalBoxFolder", "POST", "/folders")
    },
    Recipe {
        body: &[("status", "=\"inactive\"")],
        outputs: &[("User Status", "status")],
        ..recipe("box", "deactivateUser", "PUT", "/users/{url:User ID}")
    },
    Recipe {
        query: &[("notify", "=false"), ("force", "=true")],
        outputs: &[("Deletion Status Code", "@status")],
        ..recipe("box", "deleteUser", "DELETE", "/users/{url:User ID}")
    },
    Recipe {
        query: &[("filter_term", "User Details")],
        from: "entries.0",
        outputs: &[("User ID", "id")],
        ..recipe("box", "searchForUser", "GET", "/users")
    },
    Recipe {
        body: &[("owned_by.id", "Transfer To User ID")],
        ..recipe(
            "box",
            "transferUserFolders",
            "PUT",
            "/users/{url:Transfer From User ID}/folders/0",
        )
    },
    Recipe {
        body: &[("ref", "refs/heads/{Branch Name}"), ("sha", "Сommit SHA")],
        outputs: &[
            ("Branch Full Name", "ref"),
            ("Branch Node ID", "node_id"),
            ("Сommit SHA", "object.sha"),
        ],
        ..recipe("github", "createBranch", "POST", "/repos/{repo}/git/refs")
    },
    Recipe {
        body: &[
            ("message", "Message"),
            ("content", "{b64:File Content}"),
            ("branch", "Branch Name"),
        ],
        from: "content",
        outputs: &[
            ("File Name", "name"),
            ("File Path", "path"),
            ("Content SHA", "sha"),
            ("HTML URL", "html_url"),
        ],
        ..recipe(
            "github",
            "createFileContent",
            "PUT",
            "/repos/{repo}/contents/{Path}",
        )
    },
    Recipe {
        body: &[
            ("title", "Title"),
            ("body", "Description"),
            ("head", "HEAD Branch"),
            ("base", "BASE Branch"),
            ("draft", "Is Draft?"),
        ],
        outputs: &[
            ("Pull Request Number", "number"),
            ("Pull Request ID", "id"),
            ("Pull Request Node ID", "node_id"),
            ("Description", "body"),
            ("Login", "user.login"),
            ("User Node ID", "user.node_id"),
            ("User ID", "user.id"),
            ("BASE Branch", "base.ref"),
            ("HEAD Branch", "head.ref"),
            ("Is Draft?", "draft"),
            ("Is Locked?", "locked"),
            ("Is Maintainer Can Modify?", "maintainer_can_modify"),
            ("Additions Count", "additions"),
            ("Deletions Count", "deletions"),
            ("Changed Files Count", "changed_files"),
            ("Commits Count", "commits"),
            ("Assignee Username", "assignee.login"),
            ("Assignee Node ID", "assignee.node_id"),
            ("Assignee ID", "assignee.id"),
            ("Milestone Title", "milestone.title"),
            ("Milestone ID", "milestone.id"),
            ("Milestone Node ID", "milestone.node_id"),
            ("Milestone Number", "milestone.number"),
        ],
        ..recipe("github", "createPullRequest", "POST", "/repos/{repo}/pulls")
    },
    Recipe {
        outputs: &[("Commit SHA", "commit.sha")],
        ..recipe(
            "github",
            "searchBranches",
            "GET",
            "/repos/{repo}/branches/{url:Name}",
        )
    },
    Recipe {
        body: &[("suspended", "=false")],
        outputs: &[("Status Code", "@status")],
        ..recipe(
            "googledirectory",
            "activateUser",
            "PUT",
            "/admin/directory/v1/users/{url:ID}",
        )
    },
    Recipe {
        body: &[("suspended", "=true")],
        outputs: &[("Status Code", "@status")],
        ..recipe(
            "googledirectory",
            "deactivateUser",
            "PUT",
            "/admin/directory/v1/users/{url:ID}",
        )
    },
    Recipe {
        body: &[
            ("oldOwnerUserId", "From User"),
            ("newOwnerUserId", "To User"),
            (
                "applicationDataTransfers",
                "=[{\"applicationId\": \"55656082996\"}]",
            ),
        ],
        outputs: &[
            ("Transfer ID", "id"),
            ("Transfer Status", "overallTransferStatusCode"),
            ("Request Time", "requestTime"),
        ],
        note: "Google's Data Transfer API takes user ids, not email addresses",
        ..recipe(
            "googledrive",
            "createTransferRequest",
            "POST",
            "/admin/datatransfer/v1/transfers",
        )
    },
    Recipe {
        outputs: &[
            ("Transfer ID", "id"),
            ("Transfer Status", "overallTransferStatusCode"),
            ("New Owner Email", "newOwnerUserId"),
            ("Old Owner Email", "oldOwnerUserId"),
            ("Request Time", "requestTime"),
        ],
        note: "the owners come back as Google user ids, not email addresses",
        ..recipe(
            "googledrive",
            "readTransferRequest",
            "GET",
            "/admin/datatransfer/v1/transfers/{url:Transfer ID}",
        )
    },
    Recipe {
        outputs: &[("Rows", "values")],
        note: "rows come back as lists of cell values, not Okta Workflows' `Row Number`/`Columns` objects",
        ..recipe(
            "googlesheets",
            "readAllRows",
            "GET",
            "/spreadsheets/{url:spreadsheet}/values/{url:worksheet}",
        )
    },
    Recipe {
        query: &[("id", "Lead IDs")],
        from: "result",
        outputs: &[("Leads", "")],
        ..recipe(
            "marketo",
            "addLeadsToList",
            "POST",
            "/rest/v1/lists/{url:List ID}/leads.json",
        )
    },
    Recipe {
        query: &[("id", "Lead IDs")],
        ..recipe(
            "marketo",
            "removeLeadsFromList",
            "DELETE",
            "/rest/v1/lists/{url:List ID}/leads.json",
        )
    },
    Recipe {
        query: &[("name", "Folder Name")],
        from: "result.0",
        outputs: &[
            ("Folder ID", "id.id"),
            ("URL", "url"),
            ("Is Archived?", "isArchive"),
            ("Is System?", "isSystem"),
        ],
        ..recipe(
            "marketo",
            "searchFolders",
            "GET",
            "/rest/asset/v1/folder/byName.json",
        )
    },
    Recipe {
        query: &[
            ("filterType", "searchField"),
            ("filterValues", "{join:Values}"),
        ],
        outputs: &[("Leads", "result")],
        ..recipe("marketo", "searchLeads", "GET", "/rest/v1/leads.json")
    },
    Recipe {
        query: &[("name", "{join:List Names}")],
        from: "result.0",
        outputs: &[("List ID", "id")],
        ..recipe("marketo", "searchLists", "GET", "/rest/v1/lists.json")
    },
    Recipe {
        body: &[
            ("invitedUserDisplayName", "invitedUserDisplayName"),
            ("invitedUserEmailAddress", "invitedUserEmailAddress"),
            ("sendInvitationMessage", "sendInvitationMessage"),
            ("inviteRedirectUrl", "inviteRedirectUrl"),
            ("invitedUserType", "invitedUserType"),
            (
                "invitedUserMessageInfo.customizedMessageBody",
                "Invited User Message Info/customizedMessageBody",
            ),
            (
                "invitedUserMessageInfo.messageLanguage",
                "Invited User Message Info/messageLanguage",
            ),
        ],
        outputs: &[
            ("invitedUser", "invitedUser.id"),
            ("ccRecipients", "invitedUserMessageInfo.ccRecipients"),
            (
                "customizedMessageBody",
                "invitedUserMessageInfo.customizedMessageBody",
            ),
            ("messageLanguage", "invitedUserMessageInfo.messageLanguage"),
        ],
        ..recipe("office365admin", "createGuestUser", "POST", "/invitations")
    },
    Recipe {
        ..recipe(
            "office365admin",
            "readUser",
            "GET",
            "/users/{url:ID or Email}",
        )
    },
    Recipe {
        body: &[
            ("customer.first_name", "First Name"),
            ("customer.last_name", "Last Name"),
            ("customer.email", "Email"),
            ("customer.phone", "Phone"),
            ("customer.tags", "Tags"),
            ("customer.tax_exempt", "Tax Exempt?"),
            ("customer.accepts_marketing", "Accepts Marketing?"),
        ],
        from: "customer",
        outputs: &[("ID", "id"), ("Accepts Marketing?", "accepts_marketing")],
        ..recipe("shopify", "createCustomer", "POST", "/customers.json")
    },
    Recipe {
        body: &[
            ("customer.first_name", "first_name"),
            ("customer.last_name", "last_name"),
            ("customer.email", "email"),
            ("customer.phone", "phone"),
            ("customer.tags", "tags"),
            ("customer.tax_exempt", "tax_exempt"),
            ("customer.accepts_marketing", "accepts_marketing"),
        ],
        from: "customer",
        ..recipe(
            "shopify",
            "updateCustomer",
            "PUT",
            "/customers/{url:Customer ID}.json",
        )
    },
    Recipe {
        outputs: &[("Status Code", "@status")],
        ..recipe(
            "shopify",
            "deleteCustomer",
            "DELETE",
            "/customers/{url:Customer ID}.json",
        )
    },
    Recipe {
        body: &[
            ("address.address1", "address1"),
            ("address.city", "city"),
            ("address.province", "province"),
            ("address.zip", "zip"),
            ("address.country_code", "country_code"),
            ("address.default", "makeDefault"),
        ],
        from: "customer_address",
        outputs: &[("ID", "id"), ("Default?", "default")],
        ..recipe(
            "shopify",
            "addAddressToCustomer",
            "POST",
            "/customers/{url:Customer ID}/addresses.json",
        )
    },
    Recipe {
        outputs: &[("status_code", "@status"), ("lock_pin", "PIN")],
        note: "only the status and the PIN come back; the device's other fields read as empty",
        ..recipe(
            "kandji",
            "updateInventory",
            "POST",
            "/devices/{url:device_id}/action/lock",
        )
    },
];

/// The recipe for a card, when there is one.
pub fn recipe_for(channel: &str, action: &str) -> Option<&'static Recipe> {
    RECIPES
        .iter()
        .find(|r| r.module == channel && r.action == action)
}

/// The vendor's base URL, as a `vars` expression.
fn base_url(cx: &mut Cx<'_>, vendor: &Vendor) -> String {
    let name = format!("{}_base_url", vendor.module);
    cx.var(&name, Value::String(vendor.base.to_owned()))
}

/// The `auth` of a request to the vendor, reading the connection's secret.
fn auth(cx: &mut Cx<'_>, card: &Card, vendor: &Vendor) -> (Option<Tv>, Vec<(String, Tv)>) {
    let connection = cx.use_connection(card);
    let secret_name = format!("{}-token", connection.name);
    let reference = format!("env:{}", env_name(&connection.name, vendor));
    match vendor.auth {
        Auth::Bearer | Auth::Unknown => {
            let token = cx.secret(&secret_name, &reference);
            (
                Some(Tv::Map(vec![
                    ("type".into(), Tv::text("bearer")),
                    ("token".into(), Tv::Str(token)),
                ])),
                Vec::new(),
            )
        }
        Auth::Header(header) => {
            let token = cx.secret(&secret_name, &reference);
            (None, vec![(header.to_owned(), Tv::Str(token))])
        }
        Auth::MicrosoftGraph => {
            let secret = cx.secret(&secret_name, &reference);
            let tenant = cx.var(
                "microsoft_tenant_id",
                Value::String("YOUR-TENANT-ID".into()),
            );
            let client = cx.var(
                "microsoft_client_id",
                Value::String("YOUR-CLIENT-ID".into()),
            );
            (
                Some(Tv::Map(vec![
                    ("type".into(), Tv::text("client_credentials")),
                    (
                        "token_url".into(),
                        Tv::Str(format!(
                            "https://login.microsoftonline.com/{{{{ {tenant} }}}}/oauth2/v2.0/token"
                        )),
                    ),
                    ("client_id".into(), Tv::expr(&client)),
                    ("client_secret".into(), Tv::Str(secret)),
                    (
                        "scope".into(),
                        Tv::text("https://graph.microsoft.com/.default"),
                    ),
                ])),
                Vec::new(),
            )
        }
    }
}

/// The environment variable of a connection's secret (`BOX_TOKEN`, `BOX_2_TOKEN`).
pub fn env_name(connection: &str, vendor: &Vendor) -> String {
    let suffix = connection
        .strip_prefix(crate::mapping::connection_base(vendor.module).as_str())
        .unwrap_or("");
    if suffix.is_empty() {
        vendor.env.to_owned()
    } else {
        let head = vendor.env.rsplit_once('_').map_or(vendor.env, |(h, _)| h);
        let tail = vendor.env.rsplit_once('_').map_or("TOKEN", |(_, t)| t);
        format!(
            "{head}{}_{tail}",
            suffix.to_ascii_uppercase().replace('-', "_")
        )
    }
}

/// Resolves a recipe source to a field value.
fn source(cx: &mut Cx<'_>, card: &Card, source: Source, steps: &mut Vec<Step>) -> Option<Tv> {
    if let Some(json) = source.strip_prefix('=') {
        return serde_json::from_str::<Value>(json)
            .ok()
            .map(|v| Tv::json(&v));
    }
    if source.contains('{') {
        return Some(Tv::Str(template(cx, card, source, steps)));
    }
    let val = input(cx, card, source);
    if val.is_unset() {
        return None;
    }
    Some(cx.tv(&val, steps))
}

/// A card input by `Key` or `Group/Key`.
fn input(cx: &mut Cx<'_>, card: &Card, source: &str) -> Val {
    let (group, key) = match source.split_once('/') {
        Some((group, key)) if card.input(Some(group), key).is_some() => (Some(group), key),
        _ => (None, source),
    };
    match card.input(group, key) {
        Some(io) => cx.val(card, io),
        None => Val::Lit(Value::Null),
    }
}

/// A recipe template: literal text with `{Key}` inputs.
fn template(cx: &mut Cx<'_>, card: &Card, text: &str, steps: &mut Vec<Step>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&crate::flow::literal_text(&rest[..open]));
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&crate::flow::literal_text(&rest[open..]));
            rest = "";
            break;
        };
        let spec = &after[..close];
        let (filter, key) = match spec.split_once(':') {
            Some((filter @ ("b64" | "url" | "join"), key)) => (Some(filter), key),
            _ => (None, spec),
        };
        let val = input(cx, card, key);
        let piece = match (&val, filter) {
            (Val::Lit(Value::String(s)), Some("url")) => {
                crate::flow::literal_text(&shared_urlencode(s))
            }
            (Val::Lit(_), None) => cx.inline(&val, steps),
            _ => {
                let expression = cx.expr(&val, steps);
                match filter {
                    Some("b64") => format!("{{{{ {expression} | b64encode }}}}"),
                    Some("url") => format!("{{{{ {expression} | urlencode }}}}"),
                    Some("join") => format!("{{{{ {expression} | join(',') }}}}"),
                    _ => format!("{{{{ {expression} }}}}"),
                }
            }
        };
        out.push_str(&piece);
        rest = &after[close + 1..];
    }
    out.push_str(&crate::flow::literal_text(rest));
    out
}

/// Percent-encodes a literal path segment.
fn shared_urlencode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Converts a card with a recipe.
pub(crate) fn by_recipe(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let recipe = recipe_for(&card.address.channel, &card.address.action)
        .ok_or_else(|| Gap::new("no recipe for this action"))?;
    let vendor = vendor(recipe.module).ok_or_else(|| Gap::new("the vendor's API is not known"))?;
    let base = base_url(cx, vendor);
    let url = format!("{{{{ {base} }}}}{}", template(cx, card, recipe.path, steps));
    let (auth, mut headers) = auth(cx, card, vendor);
    let mut with = vec![
        ("method".into(), Tv::text(recipe.method)),
        ("url".into(), Tv::Str(url)),
    ];
    for (name, from) in recipe.headers {
        if let Some(value) = source(cx, card, from, steps) {
            headers.push(((*name).to_owned(), value));
        }
    }
    if !headers.is_empty() {
        with.push(("headers".into(), Tv::Map(headers)));
    }
    let mut query = Vec::new();
    for (name, from) in recipe.query {
        if let Some(value) = source(cx, card, from, steps) {
            query.push(((*name).to_owned(), value));
        }
    }
    if !query.is_empty() {
        with.push(("query".into(), Tv::Map(query)));
    }
    if !recipe.body.is_empty() {
        let mut body = Tv::Map(Vec::new());
        for (path, from) in recipe.body {
            if let Some(value) = source(cx, card, from, steps) {
                super::kernel::insert_json_path(&mut body, path, value);
            }
        }
        with.push(("body".into(), body));
    }
    if let Some(auth) = auth {
        with.push(("auth".into(), auth));
    }
    let id = cx.id(card);
    steps.push(
        Step::card(Some(id.clone()), "http.request", with).with_comment(format!(
            "{}: {} (see {})",
            vendor.title, card.name, vendor.docs
        )),
    );
    let base = Out::step(&id).at("body").at(recipe.from);
    cx.set_outs(card, |io| {
        let key = io.base_key();
        match recipe.outputs.iter().find(|(okta, _)| *okta == key) {
            Some((_, "@status")) => Out::step(&id).at("status"),
            Some((_, path)) => base.clone().at(path).lenient(),
            None => base.clone().at(&api_name(key)).lenient(),
        }
    });
    if !recipe.note.is_empty() {
        cx.approx(card, recipe.note);
    }
    Ok(())
}

/// The API's likely name for an Okta Workflows field: the key itself when it is one word, else
/// its snake case (`Job Title` → `job_title`).
fn api_name(key: &str) -> String {
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        key.to_owned()
    } else {
        crate::names::ident(key, "value")
    }
}

/// A connector's Custom API Action: `http.request` to a path relative to the vendor's API.
pub(crate) fn custom_action(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let vendor =
        vendor(&card.address.channel).ok_or_else(|| Gap::new("the vendor's API is not known"))?;
    let pick = |card: &Card, keys: &[&str]| -> Option<crate::pack::Io> {
        keys.iter().find_map(|k| card.input(None, k)).cloned()
    };
    let method = pick(card, &["requestType", "request_type"])
        .and_then(|io| io.text().map(str::to_ascii_uppercase))
        .unwrap_or_else(|| "GET".into());
    let relative = pick(card, &["Relative URL", "relative_url"])
        .map(|io| cx.val(card, &io))
        .unwrap_or(Val::Lit(Value::Null));
    let base = base_url(cx, vendor);
    let relative = cx.inline(&relative, steps);
    let (auth, mut headers) = auth(cx, card, vendor);
    let mut with = vec![
        ("method".into(), Tv::text(&method)),
        ("url".into(), Tv::Str(format!("{{{{ {base} }}}}{relative}"))),
    ];
    if let Some(io) = pick(card, &["Headers", "headers"]) {
        let val = cx.val(card, &io);
        if !val.is_unset() {
            let value = cx.expr(&val, steps);
            if headers.is_empty() {
                with.push(("headers".into(), Tv::expr(&value)));
            } else {
                cx.approx(card, "the card's extra headers are not sent");
            }
        }
    }
    if !headers.is_empty() {
        with.push(("headers".into(), Tv::Map(std::mem::take(&mut headers))));
    }
    for (keys, field) in [(["Query", "query"], "query"), (["Body", "body"], "body")] {
        if let Some(io) = pick(card, &keys) {
            let val = cx.val(card, &io);
            if !val.is_unset() {
                with.push((field.into(), cx.tv(&val, steps)));
            }
        }
    }
    if let Some(auth) = auth {
        with.push(("auth".into(), auth));
    }
    let id = cx.id(card);
    steps.push(
        Step::card(Some(id.clone()), "http.request", with)
            .with_comment(format!("{}: {}", vendor.title, card.name)),
    );
    super::okta::response_outputs(cx, card, &id);
    Ok(())
}

/// Box Delete User: when the card moves the user's files to another user first, the transfer
/// (`PUT /users/{id}/folders/0`) runs before the deletion.
pub(crate) fn box_delete_user(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let transfer_to = input(cx, card, "Transfer To User ID");
    if !transfer_to.is_unset() {
        let vendor = vendor("box").ok_or_else(|| Gap::new("no Box vendor"))?;
        let base = base_url(cx, vendor);
        let user = template(cx, card, "{url:User ID}", steps);
        let (auth, _) = auth(cx, card, vendor);
        let to = cx.tv(&transfer_to, steps);
        let mut with = vec![
            ("method".into(), Tv::text("PUT")),
            (
                "url".into(),
                Tv::Str(format!("{{{{ {base} }}}}/users/{user}/folders/0")),
            ),
            (
                "body".into(),
                Tv::Map(vec![("owned_by".into(), Tv::Map(vec![("id".into(), to)]))]),
            ),
        ];
        if let Some(auth) = auth {
            with.push(("auth".into(), auth));
        }
        let id = cx.id(card);
        let transfer_id = cx.fresh(&format!("{id}_transfer"));
        steps.push(
            Step::card(Some(transfer_id), "http.request", with)
                .with_comment("Box: move the user's files to the other user before deleting"),
        );
    }
    by_recipe(cx, card, steps)
}

/// The HTTP connector's Get, Post and Raw Request: `http.request` to the card's URL.
pub(crate) fn http_call(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let method = match card.address.action.as_str() {
        "get" => "GET".to_owned(),
        "post" => "POST".to_owned(),
        "put" => "PUT".to_owned(),
        "patch" => "PATCH".to_owned(),
        "delete" => "DELETE".to_owned(),
        _ => input(cx, card, "Method")
            .text()
            .unwrap_or("GET")
            .to_ascii_uppercase(),
    };
    let url = input(cx, card, "URL");
    if url.is_unset() {
        return Err(Gap::new("the request has no URL"));
    }
    let mut with = vec![
        ("method".into(), Tv::text(&method)),
        ("url".into(), cx.tv(&url, steps)),
    ];
    for (key, field) in [("Query", "query"), ("Headers", "headers"), ("Body", "body")] {
        let val = input(cx, card, key);
        if !val.is_unset() {
            with.push((field.into(), cx.tv(&val, steps)));
        }
    }
    if card.config.is_some() {
        let vendor = vendor("httpfunctions").ok_or_else(|| Gap::new("no HTTP vendor"))?;
        let (auth, _) = auth(cx, card, vendor);
        if let Some(auth) = auth {
            with.push(("auth".into(), auth));
        }
        cx.approx(
            card,
            "the HTTP connection's authentication is not exported; the request sends the connection's secret as a bearer token",
        );
    }
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "http.request", with));
    super::okta::response_outputs(cx, card, &id);
    Ok(())
}

/// The HTTP connector's Close: the response of an API endpoint flow.
pub(crate) fn http_close(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut with = Vec::new();
    for (key, field) in [
        ("statusCode", "status"),
        ("headers", "headers"),
        ("body", "body"),
    ] {
        let val = input(cx, card, key);
        if !val.is_unset() {
            with.push((field.into(), cx.tv(&val, steps)));
        }
    }
    steps.push(Step::card(None, "flow.return", with));
    Ok(())
}

/// Download (Files): `http.request` GET; the file's content is the response body.
pub(crate) fn download(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let url = input(cx, card, "URL");
    let id = cx.id(card);
    let url = cx.tv(&url, steps);
    steps.push(Step::card(
        Some(id.clone()),
        "http.request",
        vec![("method".into(), Tv::text("GET")), ("url".into(), url)],
    ));
    cx.set_outs(card, |io| match io.key.as_str() {
        "Size" => Out::new(format!("(steps.{id}.body | string | length)")),
        "Filename" => Out::constant("none"),
        _ => Out::step(&id).at("body"),
    });
    Ok(())
}

/// Send Email (Gmail, Office 365 Mail): `email.send` through the project's email connection.
pub(crate) fn send_email(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut with = Vec::new();
    for (key, field) in [("To", "to"), ("CC", "cc"), ("BCC", "bcc")] {
        let val = input(cx, card, key);
        if !val.is_unset() {
            with.push((field.into(), cx.tv(&val, steps)));
        }
    }
    if with.is_empty() {
        // Okta Workflows fails such a card at run time too: keep the step, with the gap in plain view.
        cx.approx(card, "the export names no recipient; fill in `to`");
        with.push(("to".into(), Tv::text("")));
    }
    let subject = input(cx, card, "Subject");
    with.push(("subject".into(), cx.tv(&subject, steps)));
    let html = input(cx, card, "bodyIsHtml").text() == Some("Yes")
        || input(cx, card, "Message Type")
            .text()
            .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    let body = input(cx, card, "Body");
    with.push((
        if html { "html" } else { "body" }.into(),
        cx.tv(&body, steps),
    ));
    let from = input(cx, card, "From");
    if !from.is_unset() {
        with.push(("reply_to".into(), cx.tv(&from, steps)));
    }
    let file = input(cx, card, "File Content");
    if !file.is_unset() {
        let name = input(cx, card, "File Name");
        let name = if name.is_unset() {
            Tv::text("attachment.txt")
        } else {
            cx.tv(&name, steps)
        };
        let content = cx.tv(&file, steps);
        with.push((
            "attachments".into(),
            Tv::Map(vec![("filename".into(), name), ("content".into(), content)]),
        ));
    }
    let attachments = input(cx, card, "Attachments");
    if !attachments.is_unset() {
        cx.approx(card, "file attachments are not carried over");
    }
    cx.connections.insert(super::ConnectionUse {
        module: "email".into(),
        name: "email".into(),
        label: String::new(),
    });
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "email.send", with));
    cx.set_outs(card, |_| Out::step(&id).at("message_id"));
    Ok(())
}

/// A connector search that streams records to a helper flow (Kandji List Devices, Auth0 Search
/// Users): `http.request`, then `for_each` over the results with the helper.
pub(crate) fn search_and_stream(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let vendor =
        vendor(&card.address.channel).ok_or_else(|| Gap::new("the vendor's API is not known"))?;
    let (path, query, results): (&str, Vec<(String, Source)>, &str) =
        match (card.address.channel.as_str(), card.address.action.as_str()) {
            ("kandji", "searchDevices") => {
                ("/devices", vec![("user_email".into(), "user_email")], "")
            }
            ("auth0", "searchUsers") => (
                "/users",
                vec![
                    ("q".into(), "last_login:{last_login}"),
                    ("search_engine".into(), "=\"v3\""),
                ],
                "",
            ),
            _ => return Err(Gap::new("no recipe for this search")),
        };
    let base = base_url(cx, vendor);
    let (auth, headers) = auth(cx, card, vendor);
    let mut with = vec![
        ("method".into(), Tv::text("GET")),
        ("url".into(), Tv::Str(format!("{{{{ {base} }}}}{path}"))),
    ];
    if !headers.is_empty() {
        with.push(("headers".into(), Tv::Map(headers)));
    }
    let mut query_fields = Vec::new();
    for (name, from) in query {
        if let Some(value) = source(cx, card, from, steps) {
            query_fields.push((name, value));
        }
    }
    if !query_fields.is_empty() {
        with.push(("query".into(), Tv::Map(query_fields)));
    }
    if let Some(auth) = auth {
        with.push(("auth".into(), auth));
    }
    let id = cx.id(card);
    steps.push(
        Step::card(Some(id.clone()), "http.request", with).with_comment(format!(
            "{}: {} (see {})",
            vendor.title, card.name, vendor.docs
        )),
    );
    let records = Out::step(&id).at("body").at(results);
    cx.set_outs(card, |_| records.clone());
    let target = card
        .inputs
        .iter()
        .find(|io| io.ty == crate::pack::IoType::Flo)
        .and_then(|io| io.data.as_str())
        .and_then(|uuid| cx.index.flows.get(uuid));
    if let Some(helper) = target {
        let mut state = Vec::new();
        for io in card.inputs_in("Streaming") {
            if io.ty == crate::pack::IoType::Flo {
                continue;
            }
            let val = cx.val(card, io);
            state.push((io.key.clone(), cx.tv(&val, steps)));
        }
        let mut helper_with = Vec::new();
        for (position, input) in helper.inputs.iter().enumerate() {
            let value = match position {
                0 => Tv::expr("item"),
                1 => Tv::Map(state.clone()),
                _ => Tv::Null,
            };
            helper_with.push((input.ident.clone(), value));
        }
        let loop_id = cx.fresh(&format!("{id}_each"));
        steps.push(Step::of(
            Some(loop_id),
            StepKind::Loop {
                collect: false,
                items: format!("{{{{ {} }}}}", records.read()),
                var: "item".into(),
                concurrency: None,
                body: loop_over_helper(helper.name.clone(), helper_with, false),
            },
        ));
    }
    Ok(())
}

/// Google Workspace licenses: one Enterprise License Manager request per license in the list.
pub(crate) fn google_license(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let vendor = vendor("googledirectory").ok_or_else(|| Gap::new("no Google vendor"))?;
    let licenses = input(cx, card, "Product/licenses");
    let licenses = cx.expr(&licenses, steps);
    let user = input(cx, card, "User/id");
    let user = cx.expr(&user, steps);
    let (auth, _) = auth(cx, card, vendor);
    let assign = card.address.action == "assignALicenseToUser";
    let url = if assign {
        "https://licensing.googleapis.com/apps/licensing/v1/product/{{ item.productId | urlencode }}/sku/{{ item.skuId | urlencode }}/user".to_owned()
    } else {
        format!(
            "https://licensing.googleapis.com/apps/licensing/v1/product/{{{{ item.productId | urlencode }}}}/sku/{{{{ item.skuId | urlencode }}}}/user/{{{{ {user} | urlencode }}}}"
        )
    };
    let mut with = vec![
        (
            "method".into(),
            Tv::text(if assign { "POST" } else { "DELETE" }),
        ),
        ("url".into(), Tv::Str(url)),
    ];
    if assign {
        with.push((
            "body".into(),
            Tv::Map(vec![("userId".into(), Tv::expr(&user))]),
        ));
    }
    if let Some(auth) = auth {
        with.push(("auth".into(), auth));
    }
    let id = cx.id(card);
    steps.push(Step::of(
        Some(id),
        StepKind::Loop {
            collect: false,
            items: format!("{{{{ {licenses} }}}}"),
            var: "item".into(),
            concurrency: None,
            body: crate::flow::LoopBody::Steps(vec![Step::card(None, "http.request", with)]),
        },
    ));
    cx.approx(
        card,
        "each license object needs `productId` and `skuId` (Google's Enterprise License Manager ids)",
    );
    Ok(())
}

/// Get All Licenses: the Google Workspace license SKUs, listed in `vars.google_licenses`.
pub(crate) fn google_license_catalog(
    cx: &mut Cx<'_>,
    card: &Card,
    steps: &mut Vec<Step>,
) -> Converted {
    let licenses = cx.var("google_licenses", Value::Array(Vec::new()));
    let id = cx.id(card);
    steps.push(
        Step::card(
            Some(id.clone()),
            "flow.assign",
            vec![("Licenses".into(), Tv::expr(&licenses))],
        )
        .with_comment("The license SKUs your Google Workspace has: list them in idflow.yaml under vars.google_licenses"),
    );
    cx.set_outs(card, |_| Out::step(&id).at("Licenses").shaped(Shape::Plain));
    Ok(())
}

/// The OpenAI chat completion's `choices` and `usage`, with Okta Workflows' field names.
pub(crate) fn openai_chat(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    by_recipe(cx, card, steps)?;
    let id = cx.id(card);
    let body = Out::step(&id).at("body");
    cx.set_outs(card, |io| match io.base_key() {
        "choices" => body
            .clone()
            .at("choices")
            .shaped(records_openai::choices().list()),
        "usage" => body.clone().at("usage").shaped(records_openai::usage()),
        "raw_output" => body.clone(),
        key => body.clone().at(key).lenient(),
    });
    Ok(())
}

/// Shapes of OpenAI responses as the Okta Workflows connector shows them.
mod records_openai {
    use crate::expr::{Fallback, Field, FieldRef, Record, Shape, path};
    use std::rc::Rc;

    fn field(okta: &str, to: &str, shape: Shape) -> Field {
        Field {
            okta: okta.into(),
            to: FieldRef::Path(path(to)),
            required: false,
            shape,
            approximate: false,
        }
    }

    pub fn choices() -> Shape {
        Shape::Record(Rc::new(Record {
            name: "choice",
            fields: vec![
                field("Index", "index", Shape::Plain),
                field(
                    "Message",
                    "message",
                    Shape::Record(Rc::new(Record {
                        name: "message",
                        fields: vec![
                            field("Role", "role", Shape::Plain),
                            field("Content", "content", Shape::Plain),
                        ],
                        fallback: Fallback::LowerFirst,
                    })),
                ),
                field("Finish Reason", "finish_reason", Shape::Plain),
            ],
            fallback: Fallback::LowerFirst,
        }))
    }

    pub fn usage() -> Shape {
        Shape::Record(Rc::new(Record {
            name: "usage",
            fields: vec![
                field("Prompt Tokens", "prompt_tokens", Shape::Plain),
                field("Completion Tokens", "completion_tokens", Shape::Plain),
                field("Total Tokens", "total_tokens", Shape::Plain),
            ],
            fallback: Fallback::LowerFirst,
        }))
    }
}
