use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::model::ProjectConfig;

/// A policy from `allow` entries and `connections` (name → connection JSON), with `own` as this
/// host's addresses.
fn policy(allow: &[&str], connections: Value, own: &[&str]) -> EgressPolicy {
    let mut project = ProjectConfig::default();
    project.egress.allow = allow
        .iter()
        .map(|entry| Allow::parse(entry).expect(entry))
        .collect();
    if let Value::Object(map) = connections {
        project.connections = map.into_iter().collect::<BTreeMap<_, _>>();
    }
    project
        .egress_policy()
        .with_own_addresses(own.iter().map(|ip| ip.parse().expect(ip)).collect())
}

/// Checks `url` against `policy`: `Ok(())` or the refusal's message without the common hint.
fn check(policy: &EgressPolicy, url: &str, expected: Result<(), &str>) {
    let parsed = Url::parse(url).expect(url);
    let got = policy.check_url(&parsed).map_err(|denied| denied.reason());
    assert_eq!(got, expected.map_err(str::to_owned), "{url}");
}

#[test]
fn classifies_every_range_refused_by_default() {
    let cases: &[(&str, Option<Rule>)] = &[
        ("127.0.0.1", Some(Rule::Loopback)),
        ("127.255.255.254", Some(Rule::Loopback)),
        ("::1", Some(Rule::Loopback)),
        ("0.0.0.0", Some(Rule::Unspecified)),
        ("0.1.2.3", Some(Rule::Unspecified)),
        ("::", Some(Rule::Unspecified)),
        ("10.0.0.1", Some(Rule::Private)),
        ("172.16.0.1", Some(Rule::Private)),
        ("172.31.255.255", Some(Rule::Private)),
        ("192.168.1.1", Some(Rule::Private)),
        ("100.64.0.1", Some(Rule::Shared)),
        ("100.100.100.200", Some(Rule::Shared)),
        ("169.254.169.254", Some(Rule::LinkLocal)),
        ("fe80::1", Some(Rule::LinkLocal)),
        ("fd00:ec2::254", Some(Rule::UniqueLocal)),
        ("fc00::1", Some(Rule::UniqueLocal)),
        ("fec0::1", Some(Rule::UniqueLocal)),
        ("224.0.0.1", Some(Rule::Multicast)),
        ("ff02::1", Some(Rule::Multicast)),
        ("255.255.255.255", Some(Rule::Broadcast)),
        ("240.0.0.1", Some(Rule::Reserved)),
        ("192.0.0.170", Some(Rule::Reserved)),
        ("198.18.0.1", Some(Rule::Reserved)),
        ("2001::1", Some(Rule::Reserved)),
        ("100::1", Some(Rule::Reserved)),
        ("192.0.2.1", Some(Rule::Documentation)),
        ("198.51.100.1", Some(Rule::Documentation)),
        ("203.0.113.1", Some(Rule::Documentation)),
        ("2001:db8::1", Some(Rule::Documentation)),
        // IPv6 forms that carry an IPv4 address are judged by it.
        ("::ffff:127.0.0.1", Some(Rule::Loopback)),
        ("::ffff:169.254.169.254", Some(Rule::LinkLocal)),
        ("::10.0.0.1", Some(Rule::Private)),
        ("::ffff:0:7f00:1", Some(Rule::Loopback)),
        ("64:ff9b::a9fe:a9fe", Some(Rule::LinkLocal)),
        ("64:ff9b:1::1", Some(Rule::Private)),
        ("2002:7f00:1::1", Some(Rule::Loopback)),
        ("2002:c0a8:101::1", Some(Rule::Private)),
        // Public addresses.
        ("93.184.216.34", None),
        ("8.8.8.8", None),
        ("172.32.0.1", None),
        ("100.128.0.1", None),
        ("::ffff:93.184.216.34", None),
        ("64:ff9b::808:808", None),
        ("2002:808:808::1", None),
        ("2606:4700:4700::1111", None),
    ];
    for (ip, expected) in cases {
        let address: IpAddr = ip.parse().expect(ip);
        assert_eq!(classify(address), *expected, "{ip}");
    }
}

#[test]
fn allow_entries_parse_like_url_hosts_and_name_the_problem() {
    let cases: &[(&str, Result<&str, &str>)] = &[
        ("hooks.internal.example", Ok("hooks.internal.example")),
        ("Hooks.Internal.Example.", Ok("hooks.internal.example")),
        (
            "hooks.internal.example:8443",
            Ok("hooks.internal.example:8443"),
        ),
        ("*.corp.example", Ok("*.corp.example")),
        ("*.corp.example:443", Ok("*.corp.example:443")),
        ("127.0.0.1:9", Ok("127.0.0.1:9")),
        ("10.1.2.3", Ok("10.1.2.3")),
        ("2130706433", Ok("127.0.0.1")),
        ("0x7f.1:80", Ok("127.0.0.1:80")),
        ("10.0.0.0/8", Ok("10.0.0.0/8")),
        ("fd00::/8", Ok("fd00::/8")),
        ("::1", Ok("::1")),
        ("[::1]:8080", Ok("[::1]:8080")),
        ("[::ffff:127.0.0.1]:8080", Ok("127.0.0.1:8080")),
        ("", Err("expected a host")),
        (
            "https://hooks.example.com:8443/x",
            Err(
                "is a URL: an entry names a host, host:port, IP address or CIDR block; write `hooks.example.com:8443`",
            ),
        ),
        ("10.0.0.1/8", Err("did you mean `10.0.0.0/8`?")),
        ("10.0.0.0/33", Err("`/33` is not a prefix length (0 to 32)")),
        ("example.com/8", Err("`example.com` is not an IP address")),
        ("example.com:0", Err("`0` is not a port")),
        ("example.com:http", Err("`http` is not a port")),
        ("fd00::1:8080:x", Err("with a port, write `[address]:port`")),
        ("[::1", Err("missing `]`")),
        ("a b.example", Err("is not a host name")),
        ("*.10.0.0.1", Err("not an address")),
        ("ex*ample.com", Err("is not a host name")),
    ];
    for (text, expected) in cases {
        match (Allow::parse(text), expected) {
            (Ok(entry), Ok(shown)) => assert_eq!(entry.to_string(), *shown, "{text}"),
            (Err(message), Err(fragment)) => {
                assert!(message.contains(fragment), "{text}: {message}")
            }
            (got, expected) => panic!("{text}: got {got:?}, expected {expected:?}"),
        }
    }
}

#[test]
fn refuses_internal_addresses_written_any_way_before_anything_is_sent() {
    let policy = policy(&[], json!({}), &[]);
    let loopback = Err("`127.0.0.1:80` is a loopback address");
    check(&policy, "http://127.0.0.1/", loopback);
    // Decimal, octal, hexadecimal and short IPv4 forms are the same address to the URL parser.
    check(&policy, "http://2130706433/", loopback);
    check(&policy, "http://0177.0.0.1/", loopback);
    check(&policy, "http://0x7f000001/", loopback);
    check(&policy, "http://127.1/", loopback);
    check(
        &policy,
        "http://[::ffff:127.0.0.1]:8080/",
        Err("`[::ffff:7f00:1]:8080` reaches 127.0.0.1, a loopback address"),
    );
    check(
        &policy,
        "http://[::1]/",
        Err("`[::1]:80` is a loopback address"),
    );
    check(
        &policy,
        "http://localhost:8080/api/runs",
        Err("`localhost:8080` is a loopback address"),
    );
    check(
        &policy,
        "http://LOCALHOST./",
        Err("`localhost.:80` is a loopback address"),
    );
    check(
        &policy,
        "http://admin.localhost/",
        Err("`admin.localhost:80` is a loopback address"),
    );
    check(
        &policy,
        "http://169.254.169.254/latest/meta-data/",
        Err("`169.254.169.254:80` is a link-local address, where cloud metadata services answer"),
    );
    check(
        &policy,
        "https://[fd00:ec2::254]/",
        Err("`[fd00:ec2::254]:443` is a unique-local (private IPv6) address"),
    );
    check(
        &policy,
        "http://10.0.0.1:6379/",
        Err("`10.0.0.1:6379` is a private address"),
    );
    check(
        &policy,
        "http://0.0.0.0:8080/",
        Err("`0.0.0.0:8080` is the unspecified address, which reaches this host"),
    );
    check(
        &policy,
        "http://[::]:8080/",
        Err("`[::]:8080` is the unspecified address, which reaches this host"),
    );
    check(
        &policy,
        "ftp://example.com/",
        Err("`ftp:` is not http or https"),
    );
    // Public addresses, and names (their addresses are checked when they resolve).
    check(&policy, "https://93.184.216.34/", Ok(()));
    check(&policy, "https://api.example.com/", Ok(()));
}

#[test]
fn allow_entries_and_connections_are_trusted_on_their_ports() {
    let connections = json!({
        "okta": { "domain": "http://127.0.0.1:18080", "auth": { "type": "ssws", "token": "env:T" } },
        "okta-prod": { "domain": "example.okta.com", "auth": { "type": "ssws", "token": "env:T" } },
        "slack": { "token": "env:SLACK", "base_url": "http://localhost:8026/api" },
        "email": { "from": "a@example.com", "smtp": { "host": "10.0.0.25", "port": 25 } },
    });
    let policy = policy(
        &[
            "127.0.0.1:9",
            "10.20.0.0/16",
            "hooks.internal.example",
            "*.corp.example:8443",
        ],
        connections,
        &[],
    );
    check(&policy, "http://127.0.0.1:9/health", Ok(()));
    check(&policy, "http://127.0.0.1:18080/api/v1/users", Ok(()));
    check(
        &policy,
        "http://localhost:8026/api/chat.postMessage",
        Ok(()),
    );
    check(&policy, "https://example.okta.com/api/v1/users", Ok(()));
    check(&policy, "http://10.20.3.4:8080/", Ok(()));
    check(&policy, "http://hooks.internal.example:1234/", Ok(()));
    check(&policy, "https://a.b.corp.example:8443/", Ok(()));
    // The same hosts on other ports: the loopback service next door stays out of reach.
    check(
        &policy,
        "http://127.0.0.1:8080/api/runs",
        Err("`127.0.0.1:8080` is a loopback address"),
    );
    check(
        &policy,
        "http://localhost:8080/api/runs",
        Err("`localhost:8080` is trusted on port 8026 only"),
    );
    check(
        &policy,
        "https://a.corp.example/",
        Err("`a.corp.example:443` is trusted on port 8443 only"),
    );
    check(&policy, "https://corp.example:8443/", Ok(()));
    check(
        &policy,
        "http://10.21.0.1/",
        Err("`10.21.0.1:80` is a private address"),
    );
    // SMTP hosts are trusted for email, not for http.request.
    check(
        &policy,
        "http://10.0.0.25/",
        Err("`10.0.0.25:80` is a private address"),
    );
}

#[test]
fn resolved_addresses_are_checked_unless_the_name_is_trusted() {
    let policy = policy(
        &["hooks.internal.example", "10.20.0.0/16", "127.0.0.1:9"],
        json!({}),
        &[],
    );
    let resolved = |name: &str, addresses: &[&str]| {
        let addresses: Vec<IpAddr> = addresses.iter().map(|ip| ip.parse().expect(ip)).collect();
        policy
            .check_resolved(name, &addresses)
            .map_err(|denied| denied.reason())
    };
    assert_eq!(resolved("api.example.com", &["93.184.216.34"]), Ok(()));
    assert_eq!(
        resolved("rebind.example.com", &["127.0.0.1"]),
        Err("`rebind.example.com` reaches 127.0.0.1, a loopback address".to_owned())
    );
    // One internal address among public ones refuses the name: the connector may pick any of them.
    assert_eq!(
        resolved("mixed.example.com", &["93.184.216.34", "169.254.169.254"]),
        Err(
            "`mixed.example.com` reaches 169.254.169.254, a link-local address, where cloud metadata services answer"
                .to_owned()
        )
    );
    assert_eq!(
        resolved("mapped.example.com", &["::ffff:10.0.0.1"]),
        Err("`mapped.example.com` reaches ::ffff:10.0.0.1, a private address".to_owned())
    );
    assert_eq!(resolved("hooks.internal.example.", &["10.9.9.9"]), Ok(()));
    assert_eq!(resolved("db.internal.example", &["10.20.1.1"]), Ok(()));
    // An entry with a port never lets a name through: the resolver does not see the port.
    assert_eq!(
        resolved("localhost", &["127.0.0.1"]),
        Err("`localhost` reaches 127.0.0.1, a loopback address".to_owned())
    );
}

#[test]
fn this_hosts_own_addresses_are_refused_unless_allowed() {
    let own = "93.184.216.34";
    let refused = policy(&[], json!({}), &[own]);
    check(
        &refused,
        "http://93.184.216.34:8080/",
        Err("`93.184.216.34:8080` is an address of this host"),
    );
    assert_eq!(
        refused
            .check_resolved("me.example.com", &[own.parse().unwrap()])
            .map_err(|denied| denied.reason()),
        Err("`me.example.com` reaches 93.184.216.34, an address of this host".to_owned())
    );
    let allowed = policy(&["93.184.216.34"], json!({}), &[own]);
    check(&allowed, "http://93.184.216.34:8080/", Ok(()));
}

#[test]
fn refusals_name_the_host_and_the_rule_and_how_to_allow_it() {
    let policy = policy(&[], json!({}), &[]);
    let url = Url::parse("http://169.254.169.254/latest/api/token?secret=s3cr3t").unwrap();
    let denied = policy.check_url(&url).unwrap_err();
    assert_eq!(denied.rule(), Some(Rule::LinkLocal));
    assert_eq!(
        denied.to_string(),
        "egress denied: `169.254.169.254:80` is a link-local address, where cloud metadata services answer; requests built by flows reach public addresses, the connections of idflow.yaml and what its `egress.allow` lists"
    );
}
