//! The card-by-card mapping: what each Okta Workflows card becomes in idflow.
//!
//! This table is the single source of the conversion: the importer dispatches every card through
//! it, and the mapping table of `docs/migrating-from-okta-workflows.md` is generated from it (a
//! test compares them, so the document cannot drift).

use std::sync::LazyLock;

use crate::convert::{Converter, kernel, okta, vendors};
use crate::pack::Address;

/// How faithfully a card converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fidelity {
    /// Same behaviour.
    Exact,
    /// Converted, with a difference the note describes (the flow's status becomes `approximate`).
    Approximate,
    /// An `http.request` call to the vendor's documented API, through a connection to fill in.
    Recipe,
    /// idflow has no card for it yet: the card becomes `flow.fail` ("needs card …").
    NeedsCard(&'static str),
    /// No idflow equivalent: the card becomes `flow.fail` with the note as the reason.
    NoEquivalent,
}

/// One row of the mapping.
#[derive(Clone, Copy)]
pub struct Mapping {
    /// The function family or connector (normalised as [`Address::channel`]).
    pub channel: &'static str,
    pub action: &'static str,
    /// The card's name in Okta Workflows.
    pub okta: &'static str,
    /// What it becomes (Markdown).
    pub idflow: &'static str,
    pub fidelity: Fidelity,
    /// The difference, or the reason there is no equivalent.
    pub note: &'static str,
    /// The idflow cards the conversion writes (checked against idflow's card registry).
    pub cards: &'static [&'static str],
    /// Whether the dev set of Okta's templates uses the card (others follow Okta's documentation).
    pub seen: bool,
    pub(crate) convert: Converter,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("channel", &self.channel)
            .field("action", &self.action)
            .field("fidelity", &self.fidelity)
            .finish_non_exhaustive()
    }
}

/// A converter for cards that never reach the per-card dispatch (triggers, structure).
fn structural(
    _: &mut crate::convert::Cx<'_>,
    card: &crate::pack::Card,
    _: &mut Vec<crate::flow::Step>,
) -> crate::convert::Converted {
    Err(crate::convert::Gap::new(format!(
        "`{}` only appears at the start of a flow or as part of an If/Else",
        card.name
    )))
}

/// A converter for cards with no equivalent (the dispatch reports the note).
fn none(
    _: &mut crate::convert::Cx<'_>,
    _: &crate::pack::Card,
    _: &mut Vec<crate::flow::Step>,
) -> crate::convert::Converted {
    Err(crate::convert::Gap::new("no idflow equivalent"))
}

macro_rules! row {
    ($channel:literal, $action:literal, $okta:literal, $idflow:literal, $fidelity:expr, $note:literal, [$($card:literal),*], $seen:literal, $convert:expr) => {
        Mapping {
            channel: $channel,
            action: $action,
            okta: $okta,
            idflow: $idflow,
            fidelity: $fidelity,
            note: $note,
            cards: &[$($card),*],
            seen: $seen,
            convert: $convert,
        }
    };
}

use Fidelity::{Approximate, Exact, NoEquivalent, Recipe};

/// The rows, in the order the document lists them.
#[rustfmt::skip]
static ROWS: &[Mapping] = &[
    // Flow control
    row!("control", "callable", "Helper Flow / Scheduled Flow", "`helper` trigger (inputs from the card's fields) or `schedule` trigger (cron and time zone)", Exact, "", [], true, structural),
    row!("control", "if", "If/Else", "`if` / `then` / `else`", Exact, "", [], true, structural),
    row!("control", "join", "Join", "`flow.assign` after the `if`: each output from the branch that ran", Exact, "", ["flow.assign"], true, structural),
    row!("control", "branch", "If/ElseIf", "nested `if` steps over the inline branches; outputs from the branch that ran", Exact, "", ["flow.assign"], true, kernel::if_else_if),
    row!("control", "continueIf", "Continue If", "`continue_if`", Exact, "", [], true, kernel::continue_if),
    row!("control", "let", "Assign", "`flow.assign`", Exact, "", ["flow.assign"], true, kernel::assign),
    row!("control", "assignIf", "Assign If", "`flow.assign` with a conditional expression", Exact, "", ["flow.assign"], true, kernel::assign_if),
    row!("control", "lookup", "Lookup", "`flow.assign` with a table lookup expression", Exact, "", ["flow.assign"], true, kernel::lookup),
    row!("control", "return", "Return", "`flow.return` (`body`); inside an inline flow, the values it hands back", Exact, "", ["flow.return", "flow.assign"], true, kernel::return_card),
    row!("control", "returnRaw", "Return Raw", "`flow.return` with `status`, `headers`, `body`", Exact, "", ["flow.return"], true, kernel::return_raw),
    row!("control", "throwIf", "Return Error If", "`if` + `flow.fail` (code `status_<n>`)", Exact, "", ["flow.fail"], true, kernel::return_error_if),
    row!("control", "spawn", "Call Flow", "`flow.call`; outputs from the helper's `flow.return`", Exact, "", ["flow.call"], true, kernel::call_flow),
    row!("control", "run", "Call Flow Async", "`flow.start`: the helper run is queued and the flow goes on", Exact, "", ["flow.start"], true, kernel::call_flow_async),
    row!("control", "tryCatch", "If Error", "`try` / `catch`; the handler's error as `error`", Approximate, "the handler's error has idflow's fields: `message` as in Okta Workflows, the others differ", ["flow.assign"], true, kernel::if_error),
    row!("control", "until", "Wait Delay Duration (until a date)", "`wait_until`", Exact, "", [], true, kernel::wait_until),
    row!("control", "times", "Repeat", "`for_each` over `range(count)` with the helper flow", Exact, "", [], true, kernel::repeat),
    row!("control", "noop", "Noop", "nothing", Exact, "", [], true, structural),
    row!("control", "comment", "Comment", "a YAML comment above the next step", Exact, "", [], true, structural),
    // Lists
    row!("list", "each", "For Each", "`for_each` with `flow:` (helper) and `with:`", Exact, "", [], true, kernel::for_each),
    row!("list", "asyncEach", "For Each - Ignore Errors", "`for_each` whose items each run in `try`; over an event batch, the flow itself (one run per event)", Exact, "", ["flow.call"], true, kernel::for_each),
    row!("list", "map", "Map", "`map` with the helper flow", Exact, "", [], true, kernel::map),
    row!("list", "filter", "Filter Custom", "`map` over the helper, then `list.filter`", Exact, "", ["list.filter"], true, kernel::filter_custom),
    row!("list", "reduce", "Reduce", "—", NoEquivalent, "Okta's Reduce runs a helper flow per item, which may call other cards; idflow's `list.reduce` folds with an expression (`memo`, `item`): rewrite the helper as one, or collect with `map` and fold the results", [], true, none),
    row!("list", "at", "At", "`flow.assign` with `list[index]`", Exact, "", ["flow.assign"], true, kernel::at),
    row!("list", "construct", "Construct", "`flow.assign` with a list", Exact, "", ["flow.assign"], true, kernel::list_construct),
    row!("list", "difference", "Difference", "`flow.assign` with `reject('in', …)`", Exact, "", ["flow.assign"], true, kernel::set_operation),
    row!("list", "intersection", "Intersection", "`flow.assign` with `select('in', …)`", Exact, "", ["flow.assign"], true, kernel::set_operation),
    row!("list", "union", "Union", "`flow.assign` with `unique`", Exact, "", ["flow.assign"], true, kernel::set_operation),
    row!("list", "includes", "Includes", "`list.contains`", Exact, "", ["list.contains"], true, kernel::includes),
    row!("list", "join", "List to Text", "`text.join`", Exact, "", ["text.join"], true, kernel::list_join),
    row!("list", "length", "Length", "`list.length`", Exact, "", ["list.length"], true, kernel::length),
    row!("list", "pluck", "Pluck", "`list.map` with the path as an expression", Exact, "", ["list.map"], true, kernel::pluck),
    row!("list", "shift", "Get First Item", "`flow.assign` with the item and the rest", Exact, "", ["flow.assign"], true, kernel::first_or_last),
    row!("list", "pop", "Get Last Item", "`flow.assign` with the item and the rest", Exact, "", ["flow.assign"], true, kernel::first_or_last),
    row!("list", "push", "Add to End", "`flow.assign` with `list + [item]`", Exact, "", ["flow.assign"], true, kernel::push),
    row!("list", "sortBy", "Sort", "`list.sort` by the path", Exact, "", ["list.sort"], true, kernel::sort),
    row!("list", "filterBy", "Filter", "`list.filter` with the comparison", Exact, "", ["list.filter"], true, kernel::filter_or_find),
    row!("list", "findBy", "Find", "`list.find` with the comparison (its `index` output is not available)", Exact, "", ["list.find"], true, kernel::filter_or_find),
    // Objects
    row!("object", "construct", "Construct", "`flow.assign` with the object (dotted keys nest)", Exact, "", ["flow.assign"], true, kernel::object_construct),
    row!("object", "get", "Get", "`flow.assign` with the value at the path", Exact, "", ["flow.assign"], true, kernel::object_get),
    row!("object", "pick", "Get Multiple", "`flow.assign`, one field per path", Exact, "", ["flow.assign"], true, kernel::get_multiple),
    row!("object", "merge", "Merge", "`object.merge`", Exact, "", ["object.merge"], true, kernel::merge),
    row!("object", "expand", "(hidden field expander)", "a path in the expression that reads the field", Exact, "", [], true, structural),
    // Text
    row!("string", "compose", "Compose", "`text.compose`", Exact, "", ["text.compose"], true, kernel::compose),
    row!("string", "concat", "Concatenate", "`text.compose`", Exact, "", ["text.compose"], true, kernel::concatenate),
    row!("string", "split", "Split", "`text.split`", Exact, "", ["text.split"], true, kernel::split),
    row!("string", "substr", "Text Segment", "`flow.assign` with a slice", Exact, "", ["flow.assign"], true, kernel::segment),
    row!("string", "toLowerCase", "To Lower Case", "`text.lower`", Exact, "", ["text.lower"], true, kernel::lower),
    row!("string", "toUpperCase", "To Upper Case", "`text.upper`", Exact, "", ["text.upper"], false, kernel::upper),
    row!("string", "trim", "Trim", "`text.trim`", Exact, "", ["text.trim"], true, kernel::trim),
    row!("string", "length", "Length", "`text.length`", Exact, "", ["text.length"], false, kernel::text_length),
    row!("string", "contains", "Contains", "`text.contains`", Exact, "", ["text.contains"], false, kernel::text_contains),
    row!("string", "replace", "Replace", "`text.replace`", Exact, "", ["text.replace"], false, kernel::replace),
    row!("string", "find", "Find", "`text.index_of` (-1 when not found)", Exact, "", ["text.index_of"], true, kernel::index_of),
    row!("string", "lastIndexOf", "Find Last", "`text.last_index_of` (`from`: the right-most position)", Exact, "", ["text.last_index_of"], true, kernel::last_index_of),
    // Dates
    row!("date", "now", "Now", "`date.now` (parts with the `date` filter)", Exact, "", ["date.now"], true, kernel::now),
    row!("date", "add", "Add", "`date.add` with the unit's field", Exact, "", ["date.add"], true, kernel::date_add),
    row!("date", "subtract", "Subtract", "`date.add` with a negative amount", Exact, "", ["date.add"], true, kernel::date_add),
    row!("date", "diff", "Difference", "`date.diff`, one per output used", Exact, "", ["date.diff"], true, kernel::date_diff),
    row!("date", "format", "Date to Text", "`date.format` (format tokens as strftime)", Exact, "", ["date.format"], true, kernel::date_format),
    row!("date", "fromISO", "Convert", "`date.format` with the custom format; the other outputs read the date", Exact, "", ["date.format"], true, kernel::date_convert),
    // Numbers, booleans, JSON, utilities
    row!("math", "round", "Round", "`number.round`", Exact, "", ["number.round"], true, kernel::round),
    row!("math", "subtract", "Subtract", "`number.subtract`", Exact, "", ["number.subtract"], true, kernel::arithmetic),
    row!("math", "random", "Random Integer", "`number.random` (`min` <= n < `max`)", Exact, "", ["number.random"], true, kernel::random),
    row!("boolean", "and", "And", "`boolean.and`", Exact, "", ["boolean.and"], true, kernel::and_or),
    row!("json", "parse", "Parse", "`json.parse`", Exact, "", ["json.parse"], true, kernel::json_parse),
    row!("json", "stringify", "Stringify", "`json.stringify`", Exact, "", ["json.stringify"], false, kernel::json_stringify),
    row!("jwt", "sign", "Sign", "`jwt.sign`; the `payload` fields become `claims`; a key typed into the card becomes the secret `jwt-signing-key` (`env:JWT_SIGNING_KEY`)", Exact, "", ["jwt.sign"], true, kernel::jwt_sign),
    row!("utility", "exportFlo", "Export Flow", "—", NoEquivalent, "idflow flows are already files in git; commit them instead of exporting", [], true, none),
    // Triggers
    row!("http", "accept", "API Endpoint", "`api` trigger: `auth: token` (client token), `auth: jwt` (Okta authorization server); `respond: sync` when the flow returns a value", Exact, "", [], true, structural),
    row!("http", "delegated", "Delegated Flow", "`delegated` trigger with typed scalar inputs and the `okta-delegated` caller", Exact, "", [], true, structural),
    // Okta
    row!("okta", "readUser", "Read User", "`okta.read_user`; fields read from the user object", Exact, "", ["okta.read_user"], true, okta::read_user),
    row!("okta", "createUser", "Create User", "`okta.create_user`", Exact, "", ["okta.create_user"], true, okta::create_user),
    row!("okta", "updateUser", "Update User", "`okta.update_user` (partial)", Exact, "", ["okta.update_user"], true, okta::update_user),
    row!("okta", "addNewUserToGroup", "Add User to Group", "`okta.add_user_to_group`", Exact, "", ["okta.add_user_to_group"], true, okta::group_membership),
    row!("okta", "removeUserFromGroup", "Remove User from Group", "`okta.remove_user_from_group`", Exact, "", ["okta.remove_user_from_group"], true, okta::group_membership),
    row!("okta", "getUsersGroups", "Get Users Groups", "`okta.list_user_groups`", Exact, "", ["okta.list_user_groups"], true, okta::users_groups),
    row!("okta", "listUsersWithSearch", "List Users with Search", "`okta.find_users` (`search`, `limit`, or `stream` to the helper)", Exact, "", ["okta.find_users"], true, okta::list_users),
    row!("okta", "searchUsers", "Find Users", "`okta.find_users` with `q`", Exact, "", ["okta.find_users"], true, okta::find_users),
    row!("okta", "searchGroups", "Search Groups", "`okta.api` GET `/api/v1/groups`", Approximate, "only the first page of groups (Okta's default page size) is read", ["okta.api"], true, okta::search_groups),
    row!("okta", "searchSystemLogs", "Search System Logs", "`okta.search_system_log` (`filter`, `since`, `until`, `stream`)", Exact, "", ["okta.search_system_log"], true, okta::search_system_log),
    row!("okta", "hTTPRequest", "Custom API Action", "`okta.api`", Exact, "", ["okta.api"], true, okta::custom_api),
    row!("okta", "assignUserToApplicationForSSO", "Assign User to Application for SSO", "`okta.assign_user_to_app`", Exact, "", ["okta.assign_user_to_app"], true, okta::assign_app),
    row!("okta", "removeUserFromApplication", "Remove User from Application", "`okta.api` DELETE `/api/v1/apps/{app}/users/{user}`", Exact, "", ["okta.api"], true, okta::unassign_app),
    row!("okta", "activateUser", "Activate User", "`okta.activate_user`", Exact, "", ["okta.activate_user"], false, okta::lifecycle),
    row!("okta", "deactivateUser", "Deactivate User", "`okta.deactivate_user`", Exact, "", ["okta.deactivate_user"], false, okta::lifecycle),
    row!("okta", "suspendUser", "Suspend User", "`okta.suspend_user`", Exact, "", ["okta.suspend_user"], false, okta::lifecycle),
    row!("okta", "unsuspendUser", "Unsuspend User", "`okta.unsuspend_user`", Exact, "", ["okta.unsuspend_user"], false, okta::lifecycle),
    row!("okta", "listGroupMembers", "List Group Members", "`okta.list_group_members`", Exact, "", ["okta.list_group_members"], false, okta::group_members),
    // Tables
    row!("stash", "createRow", "Create Row", "`table.create_row`", Exact, "", ["table.create_row"], true, okta::create_row),
    row!("stash", "updateRow", "Update Row", "`table.update_row`", Exact, "", ["table.update_row"], true, okta::update_row),
    row!("stash", "deleteRow", "Delete Row", "`table.delete_row`", Exact, "", ["table.delete_row"], true, okta::delete_row),
    row!("stash", "clearTable", "Clear Table", "`table.clear`", Exact, "", ["table.clear"], true, okta::clear_table),
    row!("stash", "searchRows2", "Search Rows", "`table.search_rows` (`where`, `limit`)", Exact, "", ["table.search_rows"], true, okta::search_rows),
    row!("stash", "exportToCSV", "Export to CSV", "`table.export_csv`", Approximate, "the CSV's header uses idflow's column names; the file content is text", ["table.export_csv"], true, okta::export_csv),
    row!("stash", "readTable", "Read Table", "`flow.assign` with the table's columns (known at import)", Approximate, "the column schema lists idflow's column names and types", ["flow.assign"], true, okta::read_table),
    // Other connectors
    row!("openai", "createChatCompletion", "Create Chat Completion", "`http.request` POST `/chat/completions`", Recipe, "", ["http.request"], true, vendors::openai_chat),
    row!("openai", "customApiAction", "Custom API Action", "`http.request` relative to the OpenAI API", Recipe, "", ["http.request"], true, vendors::custom_action),
    row!("box", "createNewUser", "Create User", "`http.request` POST `/users`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("box", "createPersonalBoxFolder", "Create Personal Box Folder", "`http.request` POST `/folders` as the user", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("box", "deactivateUser", "Deactivate User", "`http.request` PUT `/users/{id}` (`status: inactive`)", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("box", "deleteUser", "Delete User", "`http.request` DELETE `/users/{id}` (after moving the files when the card does)", Recipe, "", ["http.request"], true, vendors::box_delete_user),
    row!("box", "searchForUser", "Search For User", "`http.request` GET `/users?filter_term=`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("box", "transferUserFolders", "Transfer User Folders", "`http.request` PUT `/users/{id}/folders/0`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("github", "createBranch", "Create Branch", "`http.request` POST `/repos/{repo}/git/refs`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("github", "createFileContent", "Create File Content", "`http.request` PUT `/repos/{repo}/contents/{path}`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("github", "updateFileContent", "Update File Content", "—", NoEquivalent, "GitHub needs the file's current sha: read it with http.request GET /repos/{repo}/contents/{path} and send it with the PUT", [], true, none),
    row!("github", "createPullRequest", "Create Pull Request", "`http.request` POST `/repos/{repo}/pulls`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("github", "searchBranches", "Search Branches", "`http.request` GET `/repos/{repo}/branches/{name}`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("gmail", "sendEmail2", "Send Email", "`email.send` through the project's email connection", Approximate, "sent through idflow's email connection (SMTP or SES), not the Gmail account; `From` becomes `reply_to`", ["email.send"], true, vendors::send_email),
    row!("gmail", "sendEmailWithAttachment", "Send Email with Attachment", "`email.send` with `attachments`", Approximate, "sent through idflow's email connection (SMTP or SES), not the Gmail account; `From` becomes `reply_to`", ["email.send"], true, vendors::send_email),
    row!("office365mail", "sendEmail2", "Send Email", "`email.send` through the project's email connection", Approximate, "sent through idflow's email connection (SMTP or SES), not the Office 365 mailbox", ["email.send"], true, vendors::send_email),
    row!("googledirectory", "activateUser", "Activate User", "`http.request` PUT `/admin/directory/v1/users/{id}` (`suspended: false`)", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("googledirectory", "deactivateUser", "Suspend User", "`http.request` PUT `/admin/directory/v1/users/{id}` (`suspended: true`)", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("googledirectory", "assignALicenseToUser", "Assign License to User", "`for_each` license: `http.request` POST to the Enterprise License Manager", Recipe, "", ["http.request"], true, vendors::google_license),
    row!("googledirectory", "unassignLicenseFromUser", "Unassign License from User", "`for_each` license: `http.request` DELETE to the Enterprise License Manager", Recipe, "", ["http.request"], true, vendors::google_license),
    row!("googledirectory", "getAllLicenses", "Get All Licenses", "`flow.assign` from `vars.google_licenses`", Approximate, "the SKU catalog Okta's connector holds is a list to fill in idflow.yaml", ["flow.assign"], true, vendors::google_license_catalog),
    row!("googledirectory", "readAllUserLicenses", "Read User Licenses", "—", NoEquivalent, "Google's license API answers per SKU: loop over vars.google_licenses with http.request GET …/product/{productId}/sku/{skuId}/user/{userId}", [], true, none),
    row!("googledrive", "createTransferRequest", "Create Transfer Request", "`http.request` POST to the Data Transfer API", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("googledrive", "readTransferRequest", "Read Transfer Request", "`http.request` GET to the Data Transfer API", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("googledrive", "uploadFile", "Upload File", "—", NoEquivalent, "a Drive upload is a multipart request with the file's bytes; idflow has no file values", [], true, none),
    row!("googlesheets", "readAllRows", "Read All Rows", "`http.request` GET `/spreadsheets/{id}/values/{sheet}`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("marketo", "addLeadsToList", "Add Leads to List", "`http.request` POST `/rest/v1/lists/{id}/leads.json`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("marketo", "removeLeadsFromList", "Remove Leads from List", "`http.request` DELETE `/rest/v1/lists/{id}/leads.json`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("marketo", "searchFolders", "Search Folders", "`http.request` GET `/rest/asset/v1/folder/byName.json`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("marketo", "searchLeads", "Search Leads", "`http.request` GET `/rest/v1/leads.json`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("marketo", "searchLists", "Search Lists", "`http.request` GET `/rest/v1/lists.json`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("marketo", "customAPICall", "Custom API Action", "`http.request` relative to the Marketo API", Recipe, "", ["http.request"], true, vendors::custom_action),
    row!("office365admin", "createGuestUser", "Create Guest User", "`http.request` POST `/invitations` (Microsoft Graph)", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("office365admin", "readUser", "Read User", "`http.request` GET `/users/{id}` (Microsoft Graph)", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("office365admin", "customAPIAction", "Custom API Action", "`http.request` relative to Microsoft Graph", Recipe, "", ["http.request"], true, vendors::custom_action),
    row!("shopify", "createCustomer", "Create Customer", "`http.request` POST `/customers.json`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("shopify", "updateCustomer", "Update Customer", "`http.request` PUT `/customers/{id}.json`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("shopify", "deleteCustomer", "Delete Customer", "`http.request` DELETE `/customers/{id}.json`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("shopify", "addAddressToCustomer", "Add Address to Customer", "`http.request` POST `/customers/{id}/addresses.json`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("shopify", "customAPIAction", "Custom API Action", "`http.request` relative to the Shopify Admin API", Recipe, "", ["http.request"], true, vendors::custom_action),
    row!("kandji", "searchDevices", "List Devices", "`http.request` GET `/devices`, then `for_each` with the streaming helper", Approximate, "the search reads one page of results, and each record is the vendor API's object", ["http.request"], true, vendors::search_and_stream),
    row!("kandji", "updateInventory", "Lock Device", "`http.request` POST `/devices/{id}/action/lock`", Recipe, "", ["http.request"], true, vendors::by_recipe),
    row!("auth0", "searchUsers", "Search Users", "`http.request` GET `/users?q=`, then `for_each` with the streaming helper", Approximate, "the search reads one page of results, and each record is the vendor API's object", ["http.request"], true, vendors::search_and_stream),
    row!("oktaprivilegedaccess", "customApiAction", "Custom API Action", "`http.request` relative to the Okta Privileged Access API", Recipe, "", ["http.request"], true, vendors::custom_action),
    row!("httpfunctions", "get", "Get", "`http.request` GET", Exact, "", ["http.request"], true, vendors::http_call),
    row!("httpfunctions", "post", "Post", "`http.request` POST", Exact, "", ["http.request"], true, vendors::http_call),
    row!("httpfunctions", "raw", "Raw Request", "`http.request`", Exact, "", ["http.request"], true, vendors::http_call),
    row!("httpfunctions", "close", "Close", "`flow.return` (the API endpoint's response)", Exact, "", ["flow.return"], true, vendors::http_close),
    row!("filefunctions", "largeDownload", "Download", "`http.request` GET; the content is the response body", Approximate, "the file is text in idflow; its name is not known", ["http.request"], true, vendors::download),
    row!("filefunctions", "info", "Info", "—", NoEquivalent, "idflow has no file values: the content is text", [], true, none),
    row!("jira2", "issueUpdated", "Issue Updated (event)", "—", NoEquivalent, "point a Jira webhook at an idflow `api` flow and read the issue from `input.body`", [], true, structural),
];

/// Every row: the fixed ones and one per Okta event card.
pub static TABLE: LazyLock<Vec<Mapping>> = LazyLock::new(|| {
    let mut rows = ROWS.to_vec();
    for (channel, action, name, types) in okta::EVENTS {
        let seen = matches!(
            *action,
            "userAddedToGroupMembership"
                | "userRemovedFromGroupMembership"
                | "oktaUserProfileUpdated"
                | "oktaUserPasswordUpdated"
                | "userCreated"
                | "userDeactivated"
                | "userSuspended"
                | "userReportedSuspiciousActivityBeta"
                | "userMFAFactorActivated"
                | "userMFA"
        );
        // Built once for the life of the process, like the rest of the table.
        let idflow: &'static str = Box::leak(
            format!(
                "`event` trigger on `{}`; the For Each over the event batch becomes the flow",
                types.join("`, `")
            )
            .into_boxed_str(),
        );
        rows.push(Mapping {
            channel,
            action,
            okta: name,
            idflow,
            fidelity: Fidelity::Exact,
            note: "",
            cards: &[],
            seen,
            convert: structural,
        });
    }
    rows
});

/// The row for a card's address.
pub fn lookup(address: &Address) -> Option<&'static Mapping> {
    TABLE
        .iter()
        .find(|row| row.channel == address.channel && row.action == address.action)
}

/// The base name of a connection for a connector module in `idflow.yaml`.
pub fn connection_base(module: &str) -> String {
    crate::names::slug(module, "connection")
}

/// The cards idflow lacks (each appears as "needs card …" in reports).
pub fn missing_cards() -> Vec<(&'static str, &'static Mapping)> {
    TABLE
        .iter()
        .filter_map(|row| match row.fidelity {
            Fidelity::NeedsCard(card) => Some((card, row)),
            _ => None,
        })
        .collect()
}

/// The mapping as the Markdown table of `docs/migrating-from-okta-workflows.md`.
pub fn markdown() -> String {
    let mut out = String::from(
        "| Okta Workflows card | address | idflow | fidelity |\n| --- | --- | --- | --- |\n",
    );
    for row in TABLE.iter() {
        let fidelity = match row.fidelity {
            Fidelity::Exact => "exact".to_owned(),
            Fidelity::Approximate => format!("approximate: {}", row.note)
                .trim_end_matches(": ")
                .to_owned(),
            Fidelity::Recipe => "vendor API recipe".to_owned(),
            Fidelity::NeedsCard(card) => format!("needs card `{card}` ({})", row.note),
            Fidelity::NoEquivalent => format!("not converted: {}", row.note),
        };
        let name = if row.seen {
            row.okta.to_owned()
        } else {
            format!("{} †", row.okta)
        };
        out.push_str(&format!(
            "| {} | `{}.{}` | {} | {} |\n",
            escape(&name),
            row.channel,
            row.action,
            escape(row.idflow),
            escape(&fidelity)
        ));
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The marker before the generated block of `docs/migrating-from-okta-workflows.md`.
pub const BEGIN: &str = "<!-- mapping:begin -->";
/// The marker after it.
pub const END: &str = "<!-- mapping:end -->";

/// The generated block: the cards idflow lacks, then the mapping table.
pub fn document_block() -> String {
    let mut out = String::from("### Cards idflow does not have yet\n\n");
    out.push_str(
        "Each of these becomes a `flow.fail` step whose report reason is `needs card <name>`.\n\n",
    );
    let missing = missing_cards();
    if missing.is_empty() {
        out.push_str("None at the moment: every card the mapping names exists.\n");
    }
    for (card, row) in missing {
        out.push_str(&format!(
            "- `{card}`: {} (Okta Workflows: {}, `{}.{}`)\n",
            row.note, row.okta, row.channel, row.action
        ));
    }
    out.push_str("\n### Card by card\n\n");
    out.push_str("† marks cards the dev set of Okta's templates does not use; their fields follow Okta's documentation.\n\n");
    out.push_str(&markdown());
    out
}

/// `document` with its generated block replaced by the current one.
pub fn update_document(document: &str) -> Result<String, String> {
    let start = document
        .find(BEGIN)
        .ok_or_else(|| format!("the document has no `{BEGIN}` marker"))?;
    let end = document[start..]
        .find(END)
        .map(|i| start + i + END.len())
        .ok_or_else(|| format!("the document has no `{END}` marker after `{BEGIN}`"))?;
    Ok(format!(
        "{}{BEGIN}\n{}\n{END}{}",
        &document[..start],
        document_block().trim(),
        &document[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_idflow_card_named_exists() {
        for row in TABLE.iter() {
            for card in row.cards {
                assert!(
                    domain::cards::lookup(card).is_some(),
                    "{}.{} names unknown idflow card {card}",
                    row.channel,
                    row.action
                );
            }
        }
    }

    fn migration_doc() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/migrating-from-okta-workflows.md")
    }

    #[test]
    fn the_migration_guide_lists_the_current_mapping() {
        let document = std::fs::read_to_string(migration_doc()).expect("the migration guide");
        let updated = update_document(&document).expect("markers");
        assert!(
            updated == document,
            "docs/migrating-from-okta-workflows.md is out of date: run `cargo test -p flopack --lib -- --ignored regenerate_migration_guide` and commit the result"
        );
    }

    /// Rewrites the generated block of the migration guide.
    #[test]
    #[ignore = "writes docs/migrating-from-okta-workflows.md"]
    fn regenerate_migration_guide() {
        let document = std::fs::read_to_string(migration_doc()).expect("the migration guide");
        let updated = update_document(&document).expect("markers");
        std::fs::write(migration_doc(), updated).expect("write the guide");
    }

    #[test]
    fn a_document_without_markers_is_refused() {
        assert!(update_document("no markers").is_err());
        assert!(update_document(BEGIN).is_err());
    }

    #[test]
    fn addresses_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for row in TABLE.iter() {
            assert!(
                seen.insert((row.channel, row.action)),
                "{}.{} is listed twice",
                row.channel,
                row.action
            );
        }
    }

    #[test]
    fn every_recipe_has_a_row_and_every_recipe_row_a_recipe() {
        for recipe in vendors::RECIPES {
            let row = TABLE
                .iter()
                .find(|r| r.channel == recipe.module && r.action == recipe.action);
            assert!(
                row.is_some(),
                "recipe {}.{} has no row",
                recipe.module,
                recipe.action
            );
            assert!(
                vendors::vendor(recipe.module).is_some(),
                "recipe {}.{} has no vendor",
                recipe.module,
                recipe.action
            );
        }
        for row in TABLE.iter().filter(|r| r.fidelity == Fidelity::Recipe) {
            let special = row.action.to_ascii_lowercase().starts_with("custom")
                || row.action.ends_with("LicenseFromUser")
                || row.action.ends_with("LicenseToUser");
            assert!(
                special || vendors::recipe_for(row.channel, row.action).is_some(),
                "{}.{} converts by recipe but has none",
                row.channel,
                row.action
            );
        }
    }
}
