//! The simulated org: users, groups, apps, System Log, OIG requests, and how each renders as JSON.
//!
//! Records keep what Okta keeps; `render_*` functions shape them as the management and governance
//! OpenAPI schemas describe, with absolute `_links` to the simulator. Every state change that Okta
//! would log appends a System Log event here, in the same lock, so the log never disagrees with
//! the state.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::clock::okta_time;
use crate::error::ApiError;
use crate::ids::IdGen;

/// A user's lifecycle status (Okta's `UserStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserStatus {
    /// Created, not activated.
    Staged,
    /// Activated without credentials; waiting for the user to finish activation.
    Provisioned,
    /// Active.
    Active,
    /// Password recovery in progress.
    Recovery,
    /// Password expired.
    PasswordExpired,
    /// Locked out after failed sign-ins.
    LockedOut,
    /// Suspended by an admin.
    Suspended,
    /// Deactivated.
    Deprovisioned,
}

impl UserStatus {
    /// The wire name (`ACTIVE`, `DEPROVISIONED`…).
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Staged => "STAGED",
            UserStatus::Provisioned => "PROVISIONED",
            UserStatus::Active => "ACTIVE",
            UserStatus::Recovery => "RECOVERY",
            UserStatus::PasswordExpired => "PASSWORD_EXPIRED",
            UserStatus::LockedOut => "LOCKED_OUT",
            UserStatus::Suspended => "SUSPENDED",
            UserStatus::Deprovisioned => "DEPROVISIONED",
        }
    }
}

/// Who made a request, as the System Log's `actor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// An SSWS API token, acting as the admin who minted it.
    ApiToken,
    /// An OAuth 2.0 service app.
    Client(String),
    /// The simulator itself (test helpers).
    System,
}

#[derive(Debug, Clone)]
pub(crate) struct UserRec {
    pub(crate) id: String,
    pub(crate) status: UserStatus,
    pub(crate) created: DateTime<Utc>,
    pub(crate) activated: Option<DateTime<Utc>>,
    pub(crate) status_changed: Option<DateTime<Utc>>,
    pub(crate) last_updated: DateTime<Utc>,
    pub(crate) password_changed: Option<DateTime<Utc>>,
    pub(crate) profile: Map<String, Value>,
    pub(crate) has_password: bool,
    pub(crate) provider: String,
}

#[derive(Debug, Clone)]
pub(crate) struct GroupRec {
    pub(crate) id: String,
    pub(crate) kind: &'static str,
    pub(crate) created: DateTime<Utc>,
    pub(crate) last_updated: DateTime<Utc>,
    pub(crate) last_membership_updated: DateTime<Utc>,
    pub(crate) profile: Map<String, Value>,
    /// Member user sequence numbers, so members list in creation order with cheap cursors.
    pub(crate) members: BTreeSet<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct AppUserRec {
    pub(crate) created: DateTime<Utc>,
    pub(crate) last_updated: DateTime<Utc>,
    pub(crate) scope: String,
    pub(crate) user_name: String,
    pub(crate) profile: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct AppRec {
    pub(crate) id: String,
    pub(crate) label: String,
    pub(crate) created: DateTime<Utc>,
    pub(crate) last_updated: DateTime<Utc>,
    pub(crate) users: BTreeMap<u64, AppUserRec>,
}

/// What `POST /api/v1/apps/{appId}/users` asks for besides the user.
#[derive(Debug, Clone, Default)]
pub(crate) struct AppAssignment {
    pub(crate) scope: String,
    pub(crate) user_name: Option<String>,
    pub(crate) profile: Map<String, Value>,
}

/// A message posted on an OIG request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMessage {
    /// The request id as given in the path (v1 hex or v2 `req…`).
    pub request_id: String,
    /// The message text.
    pub message: String,
    /// When it was posted (sim clock).
    pub created: DateTime<Utc>,
    /// Who posted it: `ssws`, an OAuth client id, or `system`.
    pub posted_by: String,
}

/// An ordered collection keyed by id, with stable cursors (sequence numbers).
#[derive(Debug, Clone)]
pub(crate) struct Table<T> {
    pub(crate) rows: BTreeMap<u64, T>,
    pub(crate) index: HashMap<String, u64>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
            index: HashMap::new(),
        }
    }
}

impl<T> Table<T> {
    pub(crate) fn insert(&mut self, seq: u64, id: String, row: T) {
        self.index.insert(id, seq);
        self.rows.insert(seq, row);
    }

    pub(crate) fn seq(&self, id: &str) -> Option<u64> {
        self.index.get(id).copied()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&T> {
        self.seq(id).and_then(|seq| self.rows.get(&seq))
    }
}

/// A stored System Log event and its insertion sequence (the polling cursor).
#[derive(Debug, Clone)]
pub(crate) struct LoggedEvent {
    pub(crate) seq: u64,
    pub(crate) published: DateTime<Utc>,
    pub(crate) event: Value,
}

/// Everything the simulated org holds.
pub(crate) struct Org {
    pub(crate) base_url: String,
    pub(crate) ids: IdGen,
    next_seq: u64,
    pub(crate) users: Table<UserRec>,
    logins: HashMap<String, u64>,
    pub(crate) groups: Table<GroupRec>,
    pub(crate) apps: Table<AppRec>,
    pub(crate) events: Vec<LoggedEvent>,
    pub(crate) requests_v1: Table<Value>,
    pub(crate) requests_v2: Table<Value>,
    pub(crate) messages: Vec<RequestMessage>,
    pub(crate) admin_id: String,
    pub(crate) user_type_id: String,
    pub(crate) request_type_id: String,
    /// Request id of the HTTP request being served, copied into events' `transaction.id`.
    pub(crate) current_request_id: Option<String>,
    /// Path of the HTTP request being served, for events' `debugContext.debugData.requestUri`.
    pub(crate) current_request_uri: String,
    pub(crate) seen_event_uuids: HashSet<String>,
    /// The sequence number of the newest System Log event, for event hook forwarders to wait on.
    pub(crate) log_tail: tokio::sync::watch::Sender<u64>,
}

/// What to create a user with.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewUser {
    pub(crate) profile: Map<String, Value>,
    pub(crate) activate: bool,
    pub(crate) has_password: bool,
    pub(crate) provider: Option<String>,
    pub(crate) group_ids: Vec<String>,
}

const REQUIRED_PROFILE: [&str; 4] = ["login", "email", "firstName", "lastName"];

impl Org {
    pub(crate) fn new(seed: u64, now: DateTime<Utc>) -> Self {
        let mut ids = IdGen::new(seed);
        let admin_id = ids.okta("00u");
        let user_type_id = ids.okta("oty");
        let request_type_id = ids.hex24();
        let mut org = Self {
            base_url: String::new(),
            ids,
            next_seq: 0,
            users: Table::default(),
            logins: HashMap::new(),
            groups: Table::default(),
            apps: Table::default(),
            events: Vec::new(),
            requests_v1: Table::default(),
            requests_v2: Table::default(),
            messages: Vec::new(),
            admin_id,
            user_type_id,
            request_type_id,
            current_request_id: None,
            current_request_uri: String::new(),
            seen_event_uuids: HashSet::new(),
            log_tail: tokio::sync::watch::channel(0).0,
        };
        // Every org has the built-in Everyone group.
        org.insert_group(
            now,
            "Everyone",
            "All users in your organization",
            "BUILT_IN",
        );
        org
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    // ----- users -----

    /// Finds a user by id or (case-insensitive) login.
    pub(crate) fn user_seq(&self, id_or_login: &str) -> Option<u64> {
        self.users
            .seq(id_or_login)
            .or_else(|| self.logins.get(&id_or_login.to_lowercase()).copied())
    }

    pub(crate) fn user_by_seq(&self, seq: u64) -> Option<&UserRec> {
        self.users.rows.get(&seq)
    }

    pub(crate) fn find_user(&self, id_or_login: &str) -> Result<&UserRec, ApiError> {
        self.user_seq(id_or_login)
            .and_then(|seq| self.users.rows.get(&seq))
            .ok_or_else(|| ApiError::not_found(id_or_login, "User"))
    }

    fn validate_profile(
        &self,
        profile: &Map<String, Value>,
        except_seq: Option<u64>,
    ) -> Result<(), ApiError> {
        let mut causes = Vec::new();
        let mut field = None;
        for name in REQUIRED_PROFILE {
            let present = profile
                .get(name)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.trim().is_empty());
            if !present {
                causes.push(format!("{name}: The field cannot be left blank"));
                field.get_or_insert(name);
            }
        }
        for name in ["login", "email"] {
            if let Some(value) = profile.get(name).and_then(Value::as_str) {
                let looks_like_email = value.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && domain.contains('.') && !domain.ends_with('.')
                });
                if !value.is_empty() && !looks_like_email {
                    causes.push(if name == "login" {
                        "login: Username must be in the form of an email address".to_string()
                    } else {
                        "email: Does not match required pattern".to_string()
                    });
                    field.get_or_insert(name);
                }
            }
        }
        if let Some(login) = profile.get("login").and_then(Value::as_str) {
            let owner = self.logins.get(&login.to_lowercase()).copied();
            if owner.is_some() && owner != except_seq {
                causes.push(
                    "login: An object with this field already exists in the current organization"
                        .into(),
                );
                field.get_or_insert("login");
            }
        }
        match field {
            Some(field) => Err(ApiError::validation(field, causes)),
            None => Ok(()),
        }
    }

    /// Creates a user the way `POST /api/v1/users` does and logs `user.lifecycle.create`.
    pub(crate) fn create_user(
        &mut self,
        now: DateTime<Utc>,
        principal: &Principal,
        new: NewUser,
    ) -> Result<u64, ApiError> {
        self.validate_profile(&new.profile, None)?;
        let mut groups = Vec::new();
        for group_id in &new.group_ids {
            let seq = self
                .groups
                .seq(group_id)
                .ok_or_else(|| ApiError::not_found(group_id, "UserGroup"))?;
            groups.push(seq);
        }
        let provider = new.provider.unwrap_or_else(|| "OKTA".to_string());
        // Okta: activating a user who has no password leaves them PROVISIONED until they finish
        // the activation email; a password or an external provider makes them ACTIVE at once.
        let status = match (new.activate, new.has_password || provider != "OKTA") {
            (false, _) => UserStatus::Staged,
            (true, true) => UserStatus::Active,
            (true, false) => UserStatus::Provisioned,
        };
        let seq = self.seq();
        let id = self.ids.okta("00u");
        let activated = (status != UserStatus::Staged).then_some(now);
        let login = new
            .profile
            .get("login")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase();
        let user = UserRec {
            id: id.clone(),
            status,
            created: now,
            activated,
            status_changed: activated,
            last_updated: now,
            password_changed: new.has_password.then_some(now),
            profile: new.profile,
            has_password: new.has_password,
            provider,
        };
        self.logins.insert(login, seq);
        self.users.insert(seq, id, user);
        // The Everyone group holds every user.
        if let Some(everyone) = self.groups.rows.values_mut().find(|g| g.kind == "BUILT_IN") {
            everyone.members.insert(seq);
        }
        let target = self.user_target(seq);
        self.log(
            now,
            principal,
            "user.lifecycle.create",
            "Create Okta user",
            vec![target.clone()],
        );
        if status != UserStatus::Staged {
            self.log(
                now,
                principal,
                "user.lifecycle.activate",
                "Activate Okta user",
                vec![target],
            );
        }
        for group in groups {
            self.add_member_seq(now, principal, group, seq);
        }
        Ok(seq)
    }

    /// Applies a partial profile update: only the given attributes change; `null` clears one.
    pub(crate) fn update_profile(
        &mut self,
        now: DateTime<Utc>,
        principal: &Principal,
        seq: u64,
        changes: Map<String, Value>,
    ) -> Result<(), ApiError> {
        let user = self
            .users
            .rows
            .get(&seq)
            .ok_or_else(|| ApiError::not_found("user", "User"))?;
        let mut merged = user.profile.clone();
        for (key, value) in changes {
            merged.insert(key, value);
        }
        merged.retain(|key, value| !value.is_null() || REQUIRED_PROFILE.contains(&key.as_str()));
        self.validate_profile(&merged, Some(seq))?;
        let old_login = user
            .profile
            .get("login")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase();
        let new_login = merged
            .get("login")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase();
        if old_login != new_login {
            self.logins.remove(&old_login);
            self.logins.insert(new_login, seq);
        }
        if let Some(user) = self.users.rows.get_mut(&seq) {
            user.profile = merged;
            user.last_updated = now;
        }
        let target = self.user_target(seq);
        self.log(
            now,
            principal,
            "user.account.update_profile",
            "Update user profile for Okta",
            vec![target],
        );
        Ok(())
    }

    /// Runs a lifecycle operation with Okta's transition rules.
    pub(crate) fn lifecycle(
        &mut self,
        now: DateTime<Utc>,
        principal: &Principal,
        seq: u64,
        operation: &str,
    ) -> Result<(), ApiError> {
        let user = self
            .users
            .rows
            .get(&seq)
            .ok_or_else(|| ApiError::not_found("user", "User"))?;
        let from = user.status;
        let (to, event, message) = match operation {
            "activate" => {
                if !matches!(from, UserStatus::Staged | UserStatus::Deprovisioned) {
                    return Err(ApiError::new(
                        axum::http::StatusCode::FORBIDDEN,
                        "E0000016",
                        "Activation failed because the user is already active",
                    ));
                }
                let to = if user.has_password || user.provider != "OKTA" {
                    UserStatus::Active
                } else {
                    UserStatus::Provisioned
                };
                (to, "user.lifecycle.activate", "Activate Okta user")
            }
            "deactivate" => {
                if from == UserStatus::Deprovisioned {
                    return Err(ApiError::validation(
                        "user",
                        vec!["Cannot deactivate a user that is already deactivated".into()],
                    ));
                }
                (
                    UserStatus::Deprovisioned,
                    "user.lifecycle.deactivate",
                    "Deactivate Okta user",
                )
            }
            "suspend" => {
                if from != UserStatus::Active {
                    return Err(ApiError::validation(
                        "user",
                        vec!["Cannot suspend a user that is not active".into()],
                    ));
                }
                (
                    UserStatus::Suspended,
                    "user.lifecycle.suspend",
                    "Suspend Okta user",
                )
            }
            "unsuspend" => {
                if from != UserStatus::Suspended {
                    return Err(ApiError::validation(
                        "user",
                        vec!["Cannot unsuspend a user that is not suspended".into()],
                    ));
                }
                (
                    UserStatus::Active,
                    "user.lifecycle.unsuspend",
                    "Unsuspend Okta user",
                )
            }
            other => return Err(ApiError::not_found(other, "Operation")),
        };
        self.set_status(now, seq, to);
        let target = self.user_target(seq);
        self.log(now, principal, event, message, vec![target]);
        Ok(())
    }

    pub(crate) fn set_status(&mut self, now: DateTime<Utc>, seq: u64, to: UserStatus) {
        if let Some(user) = self.users.rows.get_mut(&seq) {
            if user.status != to {
                user.status = to;
                user.status_changed = Some(now);
                if to == UserStatus::Active && user.activated.is_none() {
                    user.activated = Some(now);
                }
            }
            user.last_updated = now;
        }
    }

    pub(crate) fn render_user(&self, user: &UserRec, full_links: bool) -> Value {
        let time = |t: Option<DateTime<Utc>>| t.map(okta_time).map_or(Value::Null, Value::String);
        let self_href = self.url(&format!("/api/v1/users/{}", user.id));
        let mut links = Map::new();
        links.insert("self".into(), json!({ "href": self_href }));
        if full_links {
            let lifecycle = |op: &str| json!({ "href": format!("{self_href}/lifecycle/{op}"), "method": "POST" });
            match user.status {
                UserStatus::Staged | UserStatus::Deprovisioned => {
                    links.insert("activate".into(), lifecycle("activate"));
                }
                UserStatus::Suspended => {
                    links.insert("unsuspend".into(), lifecycle("unsuspend"));
                    links.insert("deactivate".into(), lifecycle("deactivate"));
                }
                UserStatus::Active => {
                    links.insert("suspend".into(), lifecycle("suspend"));
                    links.insert("deactivate".into(), lifecycle("deactivate"));
                }
                _ => {
                    links.insert("deactivate".into(), lifecycle("deactivate"));
                }
            }
            links.insert("schema".into(), json!({ "href": self.url(&format!("/api/v1/meta/schemas/user/{}", self.user_type_id)) }));
            links.insert("type".into(), json!({ "href": self.url(&format!("/api/v1/meta/types/user/{}", self.user_type_id)) }));
        }
        let mut credentials = Map::new();
        if user.has_password {
            credentials.insert("password".into(), json!({}));
        }
        credentials.insert(
            "provider".into(),
            json!({ "type": user.provider, "name": user.provider }),
        );
        json!({
            "id": user.id,
            "status": user.status.as_str(),
            "created": okta_time(user.created),
            "activated": time(user.activated),
            "statusChanged": time(user.status_changed),
            "lastLogin": Value::Null,
            "lastUpdated": okta_time(user.last_updated),
            "passwordChanged": time(user.password_changed),
            "type": { "id": self.user_type_id },
            "profile": user.profile,
            "credentials": credentials,
            "_links": links,
        })
    }

    pub(crate) fn user_target(&self, seq: u64) -> Value {
        match self.users.rows.get(&seq) {
            Some(user) => {
                let profile = &user.profile;
                let text = |k: &str| {
                    profile
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                json!({
                    "id": user.id,
                    "type": "User",
                    "alternateId": text("login"),
                    "displayName": format!("{} {}", text("firstName"), text("lastName")).trim().to_string(),
                })
            }
            None => json!({ "id": "unknown", "type": "User" }),
        }
    }

    // ----- groups -----

    pub(crate) fn insert_group(
        &mut self,
        now: DateTime<Utc>,
        name: &str,
        description: &str,
        kind: &'static str,
    ) -> u64 {
        let seq = self.seq();
        let id = self.ids.okta("00g");
        let mut profile = Map::new();
        profile.insert("name".into(), Value::String(name.to_string()));
        profile.insert("description".into(), Value::String(description.to_string()));
        let group = GroupRec {
            id: id.clone(),
            kind,
            created: now,
            last_updated: now,
            last_membership_updated: now,
            profile,
            members: BTreeSet::new(),
        };
        self.groups.insert(seq, id, group);
        seq
    }

    pub(crate) fn find_group(&self, id: &str) -> Result<&GroupRec, ApiError> {
        self.groups
            .get(id)
            .ok_or_else(|| ApiError::not_found(id, "UserGroup"))
    }

    pub(crate) fn render_group(&self, group: &GroupRec) -> Value {
        let self_href = self.url(&format!("/api/v1/groups/{}", group.id));
        json!({
            "id": group.id,
            "created": okta_time(group.created),
            "lastUpdated": okta_time(group.last_updated),
            "lastMembershipUpdated": okta_time(group.last_membership_updated),
            "objectClass": ["okta:user_group"],
            "type": group.kind,
            "profile": group.profile,
            "_links": {
                "logo": [
                    { "name": "medium", "href": self.url("/assets/img/logos/groups/okta-medium.png"), "type": "image/png" },
                    { "name": "large", "href": self.url("/assets/img/logos/groups/okta-large.png"), "type": "image/png" }
                ],
                "users": { "href": format!("{self_href}/users") },
                "apps": { "href": format!("{self_href}/apps") },
                "self": { "href": self_href },
            },
        })
    }

    fn group_target(&self, group: &GroupRec) -> Value {
        json!({
            "id": group.id,
            "type": "UserGroup",
            "alternateId": "unknown",
            "displayName": group.profile.get("name").and_then(Value::as_str).unwrap_or_default(),
        })
    }

    /// Adds a member (idempotent, like Okta's PUT); logs only a real change.
    pub(crate) fn add_member_seq(
        &mut self,
        now: DateTime<Utc>,
        principal: &Principal,
        group_seq: u64,
        user_seq: u64,
    ) {
        let Some(group) = self.groups.rows.get_mut(&group_seq) else {
            return;
        };
        if group.members.insert(user_seq) {
            group.last_membership_updated = now;
            let group = group.clone();
            let targets = vec![self.user_target(user_seq), self.group_target(&group)];
            self.log(
                now,
                principal,
                "group.user_membership.add",
                "Add user to group membership",
                targets,
            );
        }
    }

    pub(crate) fn remove_member_seq(
        &mut self,
        now: DateTime<Utc>,
        principal: &Principal,
        group_seq: u64,
        user_seq: u64,
    ) {
        let Some(group) = self.groups.rows.get_mut(&group_seq) else {
            return;
        };
        if group.members.remove(&user_seq) {
            group.last_membership_updated = now;
            let group = group.clone();
            let targets = vec![self.user_target(user_seq), self.group_target(&group)];
            self.log(
                now,
                principal,
                "group.user_membership.remove",
                "Remove user from group membership",
                targets,
            );
        }
    }

    // ----- apps -----

    pub(crate) fn insert_app(&mut self, now: DateTime<Utc>, label: &str) -> u64 {
        let seq = self.seq();
        let id = self.ids.okta("0oa");
        let app = AppRec {
            id: id.clone(),
            label: label.to_string(),
            created: now,
            last_updated: now,
            users: BTreeMap::new(),
        };
        self.apps.insert(seq, id, app);
        seq
    }

    pub(crate) fn find_app(&self, id: &str) -> Result<&AppRec, ApiError> {
        self.apps
            .get(id)
            .ok_or_else(|| ApiError::not_found(id, "AppInstance"))
    }

    pub(crate) fn render_app(&self, app: &AppRec) -> Value {
        let self_href = self.url(&format!("/api/v1/apps/{}", app.id));
        json!({
            "id": app.id,
            "name": "bookmark",
            "label": app.label,
            "status": "ACTIVE",
            "created": okta_time(app.created),
            "lastUpdated": okta_time(app.last_updated),
            "signOnMode": "BOOKMARK",
            "features": [],
            "accessibility": { "selfService": false },
            "visibility": { "autoSubmitToolbar": false, "hide": { "iOS": false, "web": false }, "appLinks": { "login": true } },
            "credentials": { "scheme": "EDIT_USERNAME_AND_PASSWORD", "userNameTemplate": { "template": "${source.login}", "type": "BUILT_IN" } },
            "settings": { "app": { "requestIntegration": false, "url": "https://example.com/bookmark.htm" } },
            "_links": {
                "users": { "href": format!("{self_href}/users") },
                "groups": { "href": format!("{self_href}/groups") },
                "self": { "href": self_href },
                "deactivate": { "href": format!("{self_href}/lifecycle/deactivate") },
            },
        })
    }

    /// Assigns a user to an app (idempotent: a second assignment updates the app user).
    pub(crate) fn assign_app_user(
        &mut self,
        now: DateTime<Utc>,
        principal: &Principal,
        app_seq: u64,
        user_seq: u64,
        assignment: AppAssignment,
    ) {
        let AppAssignment {
            scope,
            user_name,
            profile,
        } = assignment;
        let login = self
            .users
            .rows
            .get(&user_seq)
            .and_then(|u| u.profile.get("login").and_then(Value::as_str))
            .unwrap_or_default()
            .to_string();
        let user_target = self.user_target(user_seq);
        let Some(app) = self.apps.rows.get_mut(&app_seq) else {
            return;
        };
        let created = app
            .users
            .get(&user_seq)
            .map_or(now, |existing| existing.created);
        let is_new = !app.users.contains_key(&user_seq);
        app.users.insert(
            user_seq,
            AppUserRec {
                created,
                last_updated: now,
                scope,
                user_name: user_name.unwrap_or(login),
                profile,
            },
        );
        let app_target = json!({ "id": app.id, "type": "AppInstance", "alternateId": app.label, "displayName": app.label });
        if is_new {
            self.log(
                now,
                principal,
                "application.user_membership.add",
                "Add user to application membership",
                vec![user_target, app_target],
            );
        }
    }

    pub(crate) fn render_app_user(
        &self,
        app: &AppRec,
        user_seq: u64,
        app_user: &AppUserRec,
    ) -> Value {
        let user_id = self
            .users
            .rows
            .get(&user_seq)
            .map(|u| u.id.clone())
            .unwrap_or_default();
        json!({
            "id": user_id,
            "created": okta_time(app_user.created),
            "lastUpdated": okta_time(app_user.last_updated),
            "scope": app_user.scope,
            "status": "ACTIVE",
            "statusChanged": okta_time(app_user.created),
            "passwordChanged": Value::Null,
            "syncState": "DISABLED",
            "credentials": { "userName": app_user.user_name },
            "profile": app_user.profile,
            "_links": {
                "app": { "href": self.url(&format!("/api/v1/apps/{}", app.id)) },
                "user": { "href": self.url(&format!("/api/v1/users/{user_id}")) },
            },
        })
    }

    // ----- System Log -----

    fn actor(&self, principal: &Principal) -> Value {
        match principal {
            Principal::ApiToken => json!({
                "id": self.admin_id, "type": "User", "alternateId": "admin@example.com", "displayName": "Sim Admin",
            }),
            Principal::Client(client_id) => json!({
                "id": client_id, "type": "PublicClientApp", "alternateId": client_id, "displayName": client_id,
            }),
            Principal::System => json!({
                "id": "okta-sim", "type": "SystemPrincipal", "alternateId": "system@okta.com", "displayName": "Okta System",
            }),
        }
    }

    /// Appends an event the org produced itself.
    pub(crate) fn log(
        &mut self,
        now: DateTime<Utc>,
        principal: &Principal,
        event_type: &str,
        message: &str,
        targets: Vec<Value>,
    ) {
        let transaction = self
            .current_request_id
            .clone()
            .unwrap_or_else(|| self.ids.token(27));
        let event = json!({
            "actor": self.actor(principal),
            "client": {
                "userAgent": { "rawUserAgent": "okta-sim", "os": "Unknown", "browser": "UNKNOWN" },
                "zone": "null",
                "device": "Unknown",
                "ipAddress": "127.0.0.1",
                "geographicalContext": { "city": "San Francisco", "state": "California", "country": "United States", "postalCode": "94107" },
            },
            "authenticationContext": { "authenticationStep": 0, "externalSessionId": "trs-okta-sim" },
            "displayMessage": message,
            "eventType": event_type,
            "outcome": { "result": "SUCCESS" },
            "published": okta_time(now),
            "securityContext": { "asNumber": Value::Null, "asOrg": Value::Null, "isp": Value::Null, "domain": Value::Null, "isProxy": Value::Null },
            "severity": "INFO",
            "debugContext": { "debugData": { "requestId": transaction, "requestUri": self.current_request_uri, "url": self.current_request_uri } },
            "transaction": { "type": "WEB", "id": transaction, "detail": {} },
            "uuid": "",
            "version": "0",
            "request": { "ipChain": [{ "ip": "127.0.0.1", "version": "V4" }] },
            "target": targets,
        });
        self.push_event(now, event);
    }

    /// Stores an event, filling `uuid`, `published`, `version`, `severity` and the other fields a
    /// System Log event always has when the caller left them out.
    pub(crate) fn push_event(&mut self, now: DateTime<Utc>, mut event: Value) -> String {
        let Some(map) = event.as_object_mut() else {
            return String::new();
        };
        let uuid = match map.get("uuid").and_then(Value::as_str) {
            Some(uuid) if !uuid.is_empty() => uuid.to_string(),
            _ => self.ids.uuid(),
        };
        map.insert("uuid".into(), Value::String(uuid.clone()));
        let published = map
            .get("published")
            .and_then(Value::as_str)
            .and_then(|p| DateTime::parse_from_rfc3339(p).ok())
            .map(|p| p.with_timezone(&Utc))
            .unwrap_or(now);
        map.insert("published".into(), Value::String(okta_time(published)));
        let defaults = [
            ("version", json!("0")),
            ("severity", json!("INFO")),
            ("displayMessage", json!("")),
            ("eventType", json!("system.unknown")),
            ("outcome", json!({ "result": "SUCCESS" })),
            ("actor", self.actor(&Principal::System)),
            ("target", json!([])),
            ("debugContext", json!({ "debugData": {} })),
            (
                "transaction",
                json!({ "type": "WEB", "id": self.current_request_id.clone().unwrap_or_default(), "detail": {} }),
            ),
        ];
        for (key, value) in defaults {
            map.entry(key).or_insert(value);
        }
        let seq = self.events.last().map_or(1, |e| e.seq + 1);
        self.seen_event_uuids.insert(uuid.clone());
        self.events.push(LoggedEvent {
            seq,
            published,
            event,
        });
        self.log_tail.send_replace(seq);
        uuid
    }

    // ----- OIG requests -----

    pub(crate) fn user_id_or_admin(&self, user_id: Option<&str>) -> String {
        user_id
            .map(str::to_string)
            .unwrap_or_else(|| self.admin_id.clone())
    }

    pub(crate) fn next_request_v1_seq(&mut self) -> (u64, String) {
        (self.seq(), self.ids.hex24())
    }

    pub(crate) fn next_request_v2_seq(&mut self) -> (u64, String) {
        let seq = self.seq();
        let id = self.ids.okta("req");
        (seq, id)
    }

    pub(crate) fn request_link(&self, path: &str) -> String {
        self.url(path)
    }
}
