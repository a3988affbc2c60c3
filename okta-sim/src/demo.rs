//! `--demo`: a small org with people, groups, apps and a few days of System Log history, so each
//! seed scenario of idflow's example flows has something real to work on.
//!
//! Two parts, because Okta only delivers an event hook the events that happen after the hook exists:
//! - [`seed`] builds the org as it stands when the simulator starts: eleven people (one new hire not
//!   yet activated), five groups, four apps, two OIG access requests, and a System Log with the
//!   org's history (accounts created and activated weeks ago, group memberships, app assignments),
//!   the last day's sign-ins, failed ones included (and a few older ones outside a 24-hour window),
//!   a lockout and a breached credential.
//! - [`activity`] is what happens next, at the moment it is played (right after the event hook is
//!   verified, or at start without one): the new hire is activated and added to Engineering,
//!   someone joins "No-Code Builders", a breached credential is detected, and three access requests
//!   are created (two of the subjects idflow's examples enrich, one they filter out).
//!
//! Every event is shaped as Okta's System Log writes it: the fields of the published event-hook
//! sample (`client` with `ipChain` and `geographicalContext`, `actor` and `target` with
//! `detailEntry`, `authenticationContext`, `securityContext`, `debugContext.debugData` in camelCase,
//! `legacyEventType`…), with the event types, outcomes and severities of Okta's event catalog.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use crate::clock::okta_time;
use crate::governance::{self, RequestSeed};
use crate::state::{AppAssignment, NewUser, Org, Principal, UserStatus};

/// One person of the demo org.
struct Person {
    first: &'static str,
    last: &'static str,
    title: &'static str,
    department: &'static str,
    /// The manager's login, as a profile's `manager` holds a name.
    manager: Option<&'static str>,
    city: &'static str,
}

const PEOPLE: [Person; 11] = [
    Person {
        first: "Margaret",
        last: "Hamilton",
        title: "Chief Technology Officer",
        department: "Engineering",
        manager: None,
        city: "Boston",
    },
    Person {
        first: "Grace",
        last: "Hopper",
        title: "VP Engineering",
        department: "Engineering",
        manager: Some("Margaret Hamilton"),
        city: "New York",
    },
    Person {
        first: "Ada",
        last: "Lovelace",
        title: "Staff Engineer",
        department: "Engineering",
        manager: Some("Grace Hopper"),
        city: "London",
    },
    Person {
        first: "Radia",
        last: "Perlman",
        title: "Head of Security",
        department: "Security",
        manager: Some("Margaret Hamilton"),
        city: "Seattle",
    },
    Person {
        first: "Alan",
        last: "Turing",
        title: "Security Engineer",
        department: "Security",
        manager: Some("Radia Perlman"),
        city: "Manchester",
    },
    Person {
        first: "Lee",
        last: "Chen",
        title: "Finance Director",
        department: "Finance",
        manager: Some("Margaret Hamilton"),
        city: "San Francisco",
    },
    Person {
        first: "Kim",
        last: "Park",
        title: "Financial Analyst",
        department: "Finance",
        manager: Some("Lee Chen"),
        city: "San Francisco",
    },
    Person {
        first: "Dorothy",
        last: "Vaughan",
        title: "Head of Sales",
        department: "Sales",
        manager: Some("Margaret Hamilton"),
        city: "Chicago",
    },
    Person {
        first: "Katherine",
        last: "Johnson",
        title: "Account Executive",
        department: "Sales",
        manager: Some("Dorothy Vaughan"),
        city: "Chicago",
    },
    Person {
        first: "Barbara",
        last: "Liskov",
        title: "IT Operations Engineer",
        department: "IT",
        manager: Some("Radia Perlman"),
        city: "Boston",
    },
    // The new hire: created, not yet activated; `activity` activates him.
    Person {
        first: "Ken",
        last: "Thompson",
        title: "Software Engineer",
        department: "Engineering",
        manager: Some("Grace Hopper"),
        city: "New York",
    },
];

/// The new hire's login.
const NEW_HIRE: &str = "ken.thompson@example.com";

/// The groups, with their members' logins.
const GROUPS: [(&str, &str, &[&str]); 5] = [
    (
        "Engineering",
        "Product engineering",
        &[
            "margaret.hamilton@example.com",
            "grace.hopper@example.com",
            "ada.lovelace@example.com",
        ],
    ),
    (
        "Security",
        "Security team",
        &[
            "radia.perlman@example.com",
            "alan.turing@example.com",
            "barbara.liskov@example.com",
        ],
    ),
    (
        "Finance",
        "Finance team",
        &["lee.chen@example.com", "kim.park@example.com"],
    ),
    (
        "Sales",
        "Sales team",
        &[
            "dorothy.vaughan@example.com",
            "katherine.johnson@example.com",
        ],
    ),
    (
        "No-Code Builders",
        "People who build flows without code",
        &["grace.hopper@example.com"],
    ),
];

/// The apps, with their assigned users' logins (`*`: everyone active).
const APPS: [(&str, &[&str]); 4] = [
    ("Slack", &["*"]),
    (
        "Salesforce",
        &[
            "dorothy.vaughan@example.com",
            "katherine.johnson@example.com",
            "lee.chen@example.com",
            "kim.park@example.com",
        ],
    ),
    (
        "GitHub",
        &[
            "margaret.hamilton@example.com",
            "grace.hopper@example.com",
            "ada.lovelace@example.com",
            "alan.turing@example.com",
        ],
    ),
    (
        "1Password",
        &[
            "radia.perlman@example.com",
            "alan.turing@example.com",
            "barbara.liskov@example.com",
        ],
    ),
];

/// Where sign-ins come from: (IP address, city, state, country, postal code, latitude, longitude).
type Place = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
);

const OFFICE: Place = (
    "192.0.2.10",
    "Boston",
    "Massachusetts",
    "United States",
    "02110",
    42.3601,
    -71.0589,
);
const HOME: Place = (
    "192.0.2.44",
    "New York",
    "New York",
    "United States",
    "10001",
    40.7506,
    -73.9972,
);
const SPRAY: Place = (
    "203.0.113.66",
    "Amsterdam",
    "North Holland",
    "Netherlands",
    "1012",
    52.3740,
    4.8897,
);
const ABROAD: Place = (
    "198.51.100.23",
    "Lagos",
    "Lagos",
    "Nigeria",
    "100001",
    6.4550,
    3.3941,
);

/// A sign-in of the demo's history: (hours before start, login, place, failure reason or `None`).
type SignIn = (i64, &'static str, Place, Option<&'static str>);

/// The sign-ins of the System Log history. Failures inside the last 24 hours: eight, by five
/// people, one of them a login that does not exist; three older ones fall outside that window.
const SIGN_INS: [SignIn; 17] = [
    (
        50,
        "ada.lovelace@example.com",
        HOME,
        Some("INVALID_CREDENTIALS"),
    ),
    (
        31,
        "kim.park@example.com",
        OFFICE,
        Some("INVALID_CREDENTIALS"),
    ),
    (
        26,
        "lee.chen@example.com",
        OFFICE,
        Some("VERIFICATION_ERROR"),
    ),
    (23, "grace.hopper@example.com", OFFICE, None),
    (
        21,
        "ada.lovelace@example.com",
        HOME,
        Some("INVALID_CREDENTIALS"),
    ),
    (21, "ada.lovelace@example.com", HOME, None),
    (
        14,
        "alan.turing@example.com",
        OFFICE,
        Some("VERIFICATION_ERROR"),
    ),
    (14, "alan.turing@example.com", OFFICE, None),
    (
        9,
        "katherine.johnson@example.com",
        ABROAD,
        Some("INVALID_CREDENTIALS"),
    ),
    (
        6,
        "kim.park@example.com",
        SPRAY,
        Some("INVALID_CREDENTIALS"),
    ),
    (
        6,
        "kim.park@example.com",
        SPRAY,
        Some("INVALID_CREDENTIALS"),
    ),
    (
        6,
        "kim.park@example.com",
        SPRAY,
        Some("INVALID_CREDENTIALS"),
    ),
    (5, "root@example.com", SPRAY, Some("VERIFICATION_ERROR")),
    (4, "dorothy.vaughan@example.com", OFFICE, None),
    (
        2,
        "ada.lovelace@example.com",
        OFFICE,
        Some("INVALID_CREDENTIALS"),
    ),
    (2, "ada.lovelace@example.com", OFFICE, None),
    (1, "barbara.liskov@example.com", OFFICE, None),
];

/// When the org's accounts were created, before the simulator started.
const ORG_AGE_DAYS: i64 = 30;

/// Builds the demo org at `now` (see the module docs).
pub(crate) fn seed(org: &mut Org, now: DateTime<Utc>) {
    let founded = now - Duration::days(ORG_AGE_DAYS);
    for (name, description, _) in GROUPS {
        org.insert_group(founded, name, description, "OKTA_GROUP");
    }
    for (label, _) in APPS {
        org.insert_app(founded, label);
    }
    for (n, person) in PEOPLE.iter().enumerate() {
        let login = login(person);
        let mut profile = Map::new();
        profile.insert("login".into(), json!(login));
        profile.insert("email".into(), json!(login));
        profile.insert("firstName".into(), json!(person.first));
        profile.insert("lastName".into(), json!(person.last));
        profile.insert("title".into(), json!(person.title));
        profile.insert("department".into(), json!(person.department));
        if let Some(manager) = person.manager {
            profile.insert("manager".into(), json!(manager));
        }
        profile.insert("city".into(), json!(person.city));
        profile.insert("employeeNumber".into(), json!(format!("{}", 1001 + n)));
        let new = NewUser {
            profile,
            activate: login != NEW_HIRE,
            has_password: true,
            ..NewUser::default()
        };
        // Each account a few hours after the previous one, so the history reads in order.
        let created = founded + Duration::hours(n as i64 * 3);
        // The profiles above are valid by construction; a failure would be a bug in this table.
        let _ = org.create_user(created, &Principal::ApiToken, new);
    }
    let settled = founded + Duration::days(1);
    for (name, _, members) in GROUPS {
        for member in members {
            add_member(org, settled, &Principal::ApiToken, name, member);
        }
    }
    for (label, users) in APPS {
        let Some(app) = org
            .apps
            .rows
            .iter()
            .find(|(_, a)| a.label == label)
            .map(|(s, _)| *s)
        else {
            continue;
        };
        let assigned: Vec<u64> = if users == ["*"] {
            org.users
                .rows
                .iter()
                .filter(|(_, u)| u.status == UserStatus::Active)
                .map(|(seq, _)| *seq)
                .collect()
        } else {
            users
                .iter()
                .filter_map(|login| org.user_seq(login))
                .collect()
        };
        for user in assigned {
            org.assign_app_user(
                settled,
                &Principal::ApiToken,
                app,
                user,
                AppAssignment {
                    scope: "USER".into(),
                    ..AppAssignment::default()
                },
            );
        }
    }
    for (n, (hours_ago, login, place, failure)) in SIGN_INS.into_iter().enumerate() {
        // A few seconds apart, so the sign-ins of one hour keep their order.
        let at = now - Duration::hours(hours_ago) + Duration::seconds(n as i64 * 7);
        sign_in(org, at, login, place, failure);
    }
    // Three failures in a row lock Kim Park out, as an Okta password policy would.
    let locked_at = now - Duration::hours(6) + Duration::minutes(2);
    if let Some(kim) = org.user_seq("kim.park@example.com") {
        org.set_status(locked_at, kim, UserStatus::LockedOut);
        let actor = user_ref(org, kim);
        let event = event(
            org,
            locked_at,
            "user.account.lock",
            "Max sign in attempts exceeded",
            "WARN",
            actor,
            vec![],
            SPRAY,
            ("SUCCESS", None),
            Some("core.user_auth.account_locked"),
            Map::new(),
        );
        org.push_event(locked_at, event);
    }
    // A breached password used this morning: history, before any hook existed.
    if let Some(alan) = org.user_seq("alan.turing@example.com") {
        let at = now - Duration::hours(14) + Duration::seconds(5);
        breached_credential(org, at, alan, OFFICE);
    }
    // The access requests the demo's activity announces; their events are part of that activity.
    let requester = |org: &Org, login: &str| {
        org.user_seq(login)
            .and_then(|s| org.user_by_seq(s))
            .map(|u| u.id.clone())
    };
    let kim = requester(org, "kim.park@example.com");
    governance::seed_v1(
        org,
        now,
        RequestSeed {
            subject: "Building access".into(),
            requester: kim.clone(),
            fields: vec![
                ("Building".into(), "Boston HQ".into()),
                (
                    "Business justification".into(),
                    "Quarterly close with the controllers".into(),
                ),
            ],
            ..RequestSeed::default()
        },
    );
    let katherine = requester(org, "katherine.johnson@example.com");
    let salesforce = org
        .apps
        .rows
        .values()
        .find(|a| a.label == "Salesforce")
        .map(|a| a.id.clone());
    governance::seed_v2(
        org,
        now,
        RequestSeed {
            subject: "Salesforce access".into(),
            requester: katherine,
            resource_id: salesforce,
            fields: vec![(
                "Business justification".into(),
                "New territory in the Midwest".into(),
            )],
            ..RequestSeed::default()
        },
    );
    let ada = requester(org, "ada.lovelace@example.com");
    governance::seed_v1(
        org,
        now,
        RequestSeed {
            subject: "Laptop upgrade".into(),
            requester: ada,
            ..RequestSeed::default()
        },
    );
}

/// Plays the demo's live activity at `now` (see the module docs) and returns the uuids of the
/// events it logged, oldest first.
pub(crate) fn activity(org: &mut Org, now: DateTime<Utc>) -> Vec<String> {
    let before = org.events.last().map_or(0, |e| e.seq);
    let at = |seconds: i64| now + Duration::milliseconds(seconds * 10);
    if let Some(ken) = org.user_seq(NEW_HIRE) {
        // Already active on a second run of the activity: then there is nothing to activate.
        let _ = org.lifecycle(at(0), &Principal::ApiToken, ken, "activate");
    }
    add_member(org, at(1), &Principal::ApiToken, "Engineering", NEW_HIRE);
    add_member(
        org,
        at(2),
        &Principal::ApiToken,
        "No-Code Builders",
        "ada.lovelace@example.com",
    );
    if let Some(katherine) = org.user_seq("katherine.johnson@example.com") {
        breached_credential(org, at(3), katherine, ABROAD);
    }
    let requests: Vec<(String, String, String)> = org
        .requests_v1
        .rows
        .values()
        .chain(org.requests_v2.rows.values())
        .filter_map(|request| {
            let id = request["id"].as_str()?.to_owned();
            // v1 names the subject; v2 the requested resource, whose app label is the subject.
            let subject = match request["subject"].as_str() {
                Some(subject) => subject.to_owned(),
                None => {
                    let app = request["requested"]["resourceId"].as_str()?;
                    format!("{} access", org.apps.get(app)?.label)
                }
            };
            let requester = request["requesterUserIds"][0]
                .as_str()
                .or_else(|| request["requestedBy"]["externalId"].as_str())?
                .to_owned();
            Some((id, subject, requester))
        })
        .collect();
    for (n, (id, subject, requester)) in requests.into_iter().enumerate() {
        access_request_created(org, at(4 + n as i64), &id, &subject, &requester);
    }
    org.events
        .iter()
        .filter(|e| e.seq > before)
        .map(|e| e.event["uuid"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn login(person: &Person) -> String {
    format!("{}.{}@example.com", person.first, person.last).to_lowercase()
}

fn add_member(org: &mut Org, at: DateTime<Utc>, principal: &Principal, group: &str, login: &str) {
    let group = org
        .groups
        .rows
        .iter()
        .find(|(_, g)| g.profile.get("name").and_then(Value::as_str) == Some(group))
        .map(|(seq, _)| *seq);
    if let (Some(group), Some(user)) = (group, org.user_seq(login)) {
        org.add_member_seq(at, principal, group, user);
    }
}

/// The actor or target that names a user, as the System Log writes it.
fn user_ref(org: &Org, seq: u64) -> Value {
    let mut user = org.user_target(seq);
    user["detailEntry"] = Value::Null;
    user
}

/// A `user.session.start`: `failure` is `None` for a success, else Okta's `outcome.reason`.
fn sign_in(
    org: &mut Org,
    at: DateTime<Utc>,
    login: &str,
    place: Place,
    failure: Option<&'static str>,
) {
    // A login that is no user's is still logged, with the name as typed and no id.
    let actor = match org.user_seq(login) {
        Some(seq) => user_ref(org, seq),
        None => {
            json!({ "id": "unknown", "type": "User", "alternateId": login, "displayName": "unknown", "detailEntry": null })
        }
    };
    let password = json!({ "id": "lae1password0000000001", "type": "AuthenticatorEnrollment", "alternateId": "unknown", "displayName": "Password", "detailEntry": null });
    let console = json!({ "id": "0oa1dashboard000000001", "type": "AppInstance", "alternateId": "Okta Dashboard", "displayName": "Okta Dashboard", "detailEntry": null });
    let (result, severity, legacy) = match failure {
        None => ("SUCCESS", "INFO", "core.user_auth.login_success"),
        Some(_) => ("FAILURE", "WARN", "core.user_auth.login_failed"),
    };
    let mut debug = Map::new();
    debug.insert("requestUri".into(), json!("/idp/idx/identify"));
    debug.insert("url".into(), json!("/idp/idx/identify?"));
    debug.insert(
        "threatSuspected".into(),
        json!(if place.0 == SPRAY.0 { "true" } else { "false" }),
    );
    let event = event(
        org,
        at,
        "user.session.start",
        "User login to Okta",
        severity,
        actor,
        vec![password, console],
        place,
        (result, failure),
        Some(legacy),
        debug,
    );
    org.push_event(at, event);
}

/// A `security.breached_credential.detected`: the actor is the user, the target the password;
/// always `SUCCESS` with severity `WARN`, as the catalog says.
fn breached_credential(org: &mut Org, at: DateTime<Utc>, user: u64, place: Place) {
    let actor = user_ref(org, user);
    let password = json!({ "id": "lae1password0000000001", "type": "AuthenticatorEnrollment", "alternateId": "unknown", "displayName": "Password", "detailEntry": null });
    let event = event(
        org,
        at,
        "security.breached_credential.detected",
        "Breached credential detected",
        "WARN",
        actor,
        vec![password],
        place,
        ("SUCCESS", None),
        None,
        Map::new(),
    );
    org.push_event(at, event);
}

/// An `access.request.create`: the requester is the actor, the request the target, and
/// `debugData` names the request (`accessRequestId`, `accessRequestSubject`, `requesterId`).
fn access_request_created(
    org: &mut Org,
    at: DateTime<Utc>,
    id: &str,
    subject: &str,
    requester: &str,
) {
    let actor = match org.user_seq(requester) {
        Some(seq) => user_ref(org, seq),
        None => {
            json!({ "id": requester, "type": "User", "alternateId": "unknown", "displayName": "unknown", "detailEntry": null })
        }
    };
    let permalink = org
        .requests_v1
        .seq(id)
        .or_else(|| org.requests_v2.seq(id))
        .unwrap_or_default();
    let target = json!({ "id": id, "type": "ACCESS_REQUEST", "alternateId": permalink.to_string(), "displayName": subject, "detailEntry": null });
    let mut debug = Map::new();
    debug.insert("accessRequestId".into(), json!(id));
    debug.insert("accessRequestSubject".into(), json!(subject));
    debug.insert("accessRequestStatus".into(), json!("PENDING"));
    debug.insert("requesterId".into(), json!(requester));
    debug.insert("requestUri".into(), json!("/governance/api/v2/requests"));
    let event = event(
        org,
        at,
        "access.request.create",
        "Access request created",
        "INFO",
        actor,
        vec![target],
        OFFICE,
        ("SUCCESS", None),
        None,
        debug,
    );
    org.push_event(at, event);
}

/// A whole System Log event in the shape of Okta's published event-hook sample.
#[allow(clippy::too_many_arguments)]
fn event(
    org: &mut Org,
    at: DateTime<Utc>,
    event_type: &str,
    message: &str,
    severity: &str,
    actor: Value,
    targets: Vec<Value>,
    place: Place,
    (result, reason): (&str, Option<&str>),
    legacy: Option<&str>,
    mut debug: Map<String, Value>,
) -> Value {
    let (ip, city, state, country, postal, lat, lon) = place;
    let geo = json!({ "city": city, "state": state, "country": country, "postalCode": postal, "geolocation": { "lat": lat, "lon": lon } });
    let transaction = org.ids.token(27);
    debug.insert("requestId".into(), json!(transaction));
    debug.insert(
        "deviceFingerprint".into(),
        json!(org.ids.token(32).to_lowercase()),
    );
    debug.insert(
        "dtHash".into(),
        json!(format!("{}{}", org.ids.token(32), org.ids.token(32)).to_lowercase()),
    );
    let mut event = json!({
        "uuid": org.ids.uuid(),
        "published": okta_time(at),
        "eventType": event_type,
        "version": "0",
        "displayMessage": message,
        "severity": severity,
        "client": {
            "userAgent": {
                "rawUserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
                "os": "Mac OS X",
                "browser": "CHROME",
            },
            "zone": "null",
            "device": "Computer",
            "id": null,
            "ipAddress": ip,
            "geographicalContext": geo,
            "ipChain": [{ "ip": ip, "geographicalContext": geo, "version": "V4", "source": null }],
        },
        "device": null,
        "actor": actor,
        "outcome": { "result": result, "reason": reason },
        "target": targets,
        "transaction": { "type": "WEB", "id": transaction, "detail": {} },
        "debugContext": { "debugData": debug },
        "authenticationContext": {
            "authenticationProvider": null,
            "credentialProvider": null,
            "credentialType": null,
            "issuer": null,
            "authenticationStep": 0,
            "externalSessionId": format!("idx{}", org.ids.token(22)),
            "interface": null,
        },
        "securityContext": { "asNumber": null, "asOrg": null, "isp": null, "domain": null, "isProxy": null },
        "insertionTimestamp": null,
    });
    // Event types newer than Okta's legacy log have no legacy name, and no such field.
    if let Some(legacy) = legacy {
        event["legacyEventType"] = json!(legacy);
    }
    event
}
