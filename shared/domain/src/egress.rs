//! The egress policy: where a request whose destination a flow builds (from templates, so possibly
//! from a caller's input) may go.
//!
//! By default such a request reaches public addresses only. Loopback, private, shared (carrier-grade
//! NAT), link-local (cloud metadata services), unique-local, unspecified, multicast, broadcast,
//! reserved and documentation ranges are refused, in IPv4, IPv6 and every IPv6 form that embeds an
//! IPv4 address (`::ffff:127.0.0.1`, NAT64, 6to4), and so are this host's own addresses. The origins
//! of the connections in `idflow.yaml` are trusted, and `egress.allow` adds hosts, `host:port`s,
//! addresses and CIDR blocks.
//!
//! This module is the policy itself, decided on URLs and addresses with no I/O. The `connectors`
//! crate applies it where connections are made (a reqwest resolver that checks the addresses it
//! connects to, and every redirect), and tells it this host's own addresses.
//!
//! # Layout
//! - [`Allow`]: one `egress.allow` entry (or a trusted connection origin), parsed and matched.
//! - [`Rule`], [`classify`]: the address ranges refused by default.
//! - [`EgressPolicy`]: allow entries and own addresses, built from the project config.
//! - [`EgressDenied`]: a refusal, naming the host and the rule and nothing else.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;
use url::Url;

/// Keys of a connection (or of its `auth`) whose http(s) URL is a destination the connection trusts.
const CONNECTION_URL_KEYS: &[&str] = &["domain", "base_url", "token_url"];

/// One `egress.allow` entry, or the origin of a configured connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Allow {
    /// A host name (lowercase ASCII, no trailing dot), on one port or on any.
    Host { name: String, port: Option<u16> },
    /// `*.example.com`: every name under `example.com` (not `example.com` itself).
    Subdomains { suffix: String, port: Option<u16> },
    /// One address, on one port or on any.
    Ip { ip: IpAddr, port: Option<u16> },
    /// A CIDR block such as `10.0.0.0/8`, on any port.
    Network { base: IpAddr, prefix: u8 },
}

impl Allow {
    /// Parses `host`, `host:port`, `*.domain`, `*.domain:port`, an IPv4 or IPv6 address
    /// (`[v6]:port` with a port) or a CIDR block. Numeric IPv4 forms (`2130706433`, `0x7f.1`) mean the
    /// address they spell, as they do in URLs.
    pub fn parse(text: &str) -> Result<Allow, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(
                "expected a host, host:port, IP address or CIDR block such as `10.0.0.0/8`".into(),
            );
        }
        if text.contains("://") {
            let hint = Url::parse(text)
                .ok()
                .and_then(|url| {
                    let host = url.host_str()?.to_owned();
                    Some(match url.port() {
                        Some(port) => format!("; write `{host}:{port}`"),
                        None => format!("; write `{host}`"),
                    })
                })
                .unwrap_or_default();
            return Err(format!(
                "`{text}` is a URL: an entry names a host, host:port, IP address or CIDR block{hint}"
            ));
        }
        if let Some((address, prefix)) = text.split_once('/') {
            return network(address, prefix);
        }
        if let Some(rest) = text.strip_prefix('[') {
            let Some((address, after)) = rest.split_once(']') else {
                return Err(format!("`{text}`: missing `]` after the IPv6 address"));
            };
            let ip = address
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("`{address}` is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                _ => match after.strip_prefix(':') {
                    Some(port) => Some(parse_port(port)?),
                    None => return Err(format!("`{text}`: expected `[address]:port`")),
                },
            };
            return Ok(Allow::Ip {
                ip: IpAddr::V6(ip).to_canonical(),
                port,
            });
        }
        if text.matches(':').count() > 1 {
            return match text.parse::<Ipv6Addr>() {
                Ok(ip) => Ok(Allow::Ip {
                    ip: IpAddr::V6(ip).to_canonical(),
                    port: None,
                }),
                Err(_) => Err(format!(
                    "`{text}` is not an IPv6 address (with a port, write `[address]:port`)"
                )),
            };
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(parse_port(port)?)),
            None => (text, None),
        };
        if let Some(suffix) = host.strip_prefix("*.") {
            return match Target::parse_host(suffix)? {
                Target::Name(suffix) => Ok(Allow::Subdomains { suffix, port }),
                Target::Ip(_) => Err(format!(
                    "`{host}`: a wildcard covers the names under a domain, not an address"
                )),
            };
        }
        Ok(match Target::parse_host(host)? {
            Target::Name(name) => Allow::Host { name, port },
            Target::Ip(ip) => Allow::Ip { ip, port },
        })
    }

    /// Whether this entry covers `target` on `port`.
    fn covers(&self, target: &Target, port: u16) -> bool {
        self.covers_host(target) && self.port().is_none_or(|allowed| allowed == port)
    }

    /// Whether this entry covers `target` on at least one port.
    fn covers_host(&self, target: &Target) -> bool {
        match (self, target) {
            (Allow::Host { name, .. }, Target::Name(host)) => name == host,
            (Allow::Subdomains { suffix, .. }, Target::Name(host)) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (Allow::Ip { ip, .. }, Target::Ip(address)) => ip == address,
            (Allow::Network { base, prefix }, Target::Ip(address)) => {
                in_network(*address, *base, *prefix)
            }
            _ => false,
        }
    }

    /// The one port the entry is limited to.
    fn port(&self) -> Option<u16> {
        match self {
            Allow::Host { port, .. } | Allow::Subdomains { port, .. } | Allow::Ip { port, .. } => {
                *port
            }
            Allow::Network { .. } => None,
        }
    }

    /// The entry trusting a connection's URL: its host on its port (explicit or the scheme's).
    fn origin_of(url: &Url) -> Option<Allow> {
        let target = Target::of_url(url)?;
        let port = Some(url.port_or_known_default()?);
        Some(match target {
            Target::Name(name) => Allow::Host { name, port },
            Target::Ip(ip) => Allow::Ip { ip, port },
        })
    }
}

impl fmt::Display for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_port = |f: &mut fmt::Formatter<'_>, port: &Option<u16>| match port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        };
        match self {
            Allow::Host { name, port } => {
                write!(f, "{name}")?;
                with_port(f, port)
            }
            Allow::Subdomains { suffix, port } => {
                write!(f, "*.{suffix}")?;
                with_port(f, port)
            }
            Allow::Ip {
                ip: IpAddr::V6(ip),
                port: Some(port),
            } => write!(f, "[{ip}]:{port}"),
            Allow::Ip { ip, port } => {
                write!(f, "{ip}")?;
                with_port(f, port)
            }
            Allow::Network { base, prefix } => write!(f, "{base}/{prefix}"),
        }
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("`{text}` is not a port (1 to 65535)")),
    }
}

fn network(address: &str, prefix: &str) -> Result<Allow, String> {
    let base = address
        .parse::<IpAddr>()
        .map_err(|_| format!("`{address}` is not an IP address (a CIDR block is `10.0.0.0/8`)"))?;
    let width = if base.is_ipv4() { 32 } else { 128 };
    let prefix = prefix
        .parse::<u8>()
        .ok()
        .filter(|prefix| *prefix <= width)
        .ok_or_else(|| format!("`/{prefix}` is not a prefix length (0 to {width})"))?;
    let masked = mask(base, prefix);
    if masked != base {
        return Err(format!(
            "`{address}/{prefix}` has bits set past the prefix; did you mean `{masked}/{prefix}`?"
        ));
    }
    Ok(Allow::Network { base, prefix })
}

/// `ip` with the bits past `prefix` cleared.
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & kept))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & kept))
        }
    }
}

fn in_network(address: IpAddr, base: IpAddr, prefix: u8) -> bool {
    address.is_ipv4() == base.is_ipv4() && mask(address, prefix) == base
}

/// A destination host: a normalised name or a canonical address (IPv4-mapped IPv6 as IPv4).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Name(String),
    Ip(IpAddr),
}

impl Target {
    fn of_url(url: &Url) -> Option<Target> {
        Some(match url.host()? {
            url::Host::Domain(name) => Target::Name(normalise_name(name)),
            url::Host::Ipv4(ip) => Target::Ip(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Target::Ip(IpAddr::V6(ip).to_canonical()),
        })
    }

    /// A host as an allow entry writes it, read the way URLs read hosts.
    fn parse_host(text: &str) -> Result<Target, String> {
        let parsed =
            url::Host::parse(text).map_err(|err| format!("`{text}` is not a host name: {err}"))?;
        Ok(match parsed {
            url::Host::Domain(name) => {
                let name = normalise_name(&name);
                let valid = !name.is_empty()
                    && name.split('.').all(|label| {
                        !label.is_empty()
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                    });
                if !valid {
                    return Err(format!(
                        "`{text}` is not a host name (letters, digits, `-` and dots; `*.` only in front)"
                    ));
                }
                Target::Name(name)
            }
            url::Host::Ipv4(ip) => Target::Ip(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Target::Ip(IpAddr::V6(ip).to_canonical()),
        })
    }
}

/// Lowercase, without the trailing dot of a fully qualified name (`localhost.` is `localhost`).
fn normalise_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Why an address is refused by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// 127.0.0.0/8, ::1, and `localhost` names.
    Loopback,
    /// 0.0.0.0/8 and `::`: connecting there reaches this host.
    Unspecified,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, NAT64 for local use.
    Private,
    /// 100.64.0.0/10 (carrier-grade NAT, also some clouds' internal services).
    Shared,
    /// 169.254.0.0/16 (cloud metadata services) and fe80::/10.
    LinkLocal,
    /// fc00::/7 and the deprecated site-local fec0::/10.
    UniqueLocal,
    /// 224.0.0.0/4 and ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// Documentation ranges: never a real destination.
    Documentation,
    /// Ranges reserved by IANA (240.0.0.0/4, protocol assignments, benchmarking, Teredo, discard).
    Reserved,
    /// An address of this host (the source address of its outbound traffic).
    OwnAddress,
}

impl Rule {
    /// What the rule refuses, as a phrase: "a loopback address".
    pub fn describe(self) -> &'static str {
        match self {
            Rule::Loopback => "a loopback address",
            Rule::Unspecified => "the unspecified address, which reaches this host",
            Rule::Private => "a private address",
            Rule::Shared => "a shared (carrier-grade NAT) address",
            Rule::LinkLocal => "a link-local address, where cloud metadata services answer",
            Rule::UniqueLocal => "a unique-local (private IPv6) address",
            Rule::Multicast => "a multicast address",
            Rule::Broadcast => "the broadcast address",
            Rule::Documentation => "a documentation address",
            Rule::Reserved => "a reserved address",
            Rule::OwnAddress => "an address of this host",
        }
    }

    /// A short name for logs and tests.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Loopback => "loopback",
            Rule::Unspecified => "unspecified",
            Rule::Private => "private",
            Rule::Shared => "shared",
            Rule::LinkLocal => "link-local",
            Rule::UniqueLocal => "unique-local",
            Rule::Multicast => "multicast",
            Rule::Broadcast => "broadcast",
            Rule::Documentation => "documentation",
            Rule::Reserved => "reserved",
            Rule::OwnAddress => "own-address",
        }
    }
}

/// The rule that refuses `ip` by default, or `None` for a public address. IPv6 forms that carry an
/// IPv4 address (mapped, compatible, NAT64, 6to4) are judged by that IPv4 address.
pub fn classify(ip: IpAddr) -> Option<Rule> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Rule> {
    let bits = u32::from(ip);
    let within = |base: [u8; 4], prefix: u32| {
        let kept = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        bits & kept == u32::from(Ipv4Addr::from(base))
    };
    if bits == u32::MAX {
        return Some(Rule::Broadcast);
    }
    let ranges: &[([u8; 4], u32, Rule)] = &[
        ([0, 0, 0, 0], 8, Rule::Unspecified),
        ([10, 0, 0, 0], 8, Rule::Private),
        ([100, 64, 0, 0], 10, Rule::Shared),
        ([127, 0, 0, 0], 8, Rule::Loopback),
        ([169, 254, 0, 0], 16, Rule::LinkLocal),
        ([172, 16, 0, 0], 12, Rule::Private),
        ([192, 0, 0, 0], 24, Rule::Reserved),
        ([192, 0, 2, 0], 24, Rule::Documentation),
        ([192, 88, 99, 0], 24, Rule::Reserved),
        ([192, 168, 0, 0], 16, Rule::Private),
        ([198, 18, 0, 0], 15, Rule::Reserved),
        ([198, 51, 100, 0], 24, Rule::Documentation),
        ([203, 0, 113, 0], 24, Rule::Documentation),
        ([224, 0, 0, 0], 4, Rule::Multicast),
        ([240, 0, 0, 0], 4, Rule::Reserved),
    ];
    ranges
        .iter()
        .find(|(base, prefix, _)| within(*base, *prefix))
        .map(|(_, _, rule)| *rule)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Rule> {
    if ip.is_unspecified() {
        return Some(Rule::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Rule::Loopback);
    }
    let bits = u128::from(ip);
    let within = |base: u128, prefix: u32| {
        let kept = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
        bits & kept == base
    };
    let low_v4 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    // ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (translated), ::a.b.c.d (compatible, deprecated)
    // and 64:ff9b::a.b.c.d (NAT64) reach the IPv4 address they carry.
    if within(0xffff_0000_0000, 96)
        || within(0xffff_0000_0000_0000, 96)
        || within(0, 96)
        || within(0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96)
    {
        return classify_v4(low_v4);
    }
    // 2002:a.b.c.d::/48 (6to4) reaches a.b.c.d.
    if within(0x2002 << 112, 16) {
        return classify_v4(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    let ranges: &[(u128, u32, Rule)] = &[
        (0x0064_ff9b_0001 << 80, 48, Rule::Private),
        (0x0100 << 112, 64, Rule::Reserved),
        (0x2001_0db8 << 96, 32, Rule::Documentation),
        (0x2001 << 112, 32, Rule::Reserved),
        (0x3fff << 112, 20, Rule::Documentation),
        (0xfc00 << 112, 7, Rule::UniqueLocal),
        (0xfe80 << 112, 10, Rule::LinkLocal),
        (0xfec0 << 112, 10, Rule::UniqueLocal),
        (0xff00 << 112, 8, Rule::Multicast),
    ];
    ranges
        .iter()
        .find(|(base, prefix, _)| within(*base, *prefix))
        .map(|(_, _, rule)| *rule)
}

/// A request refused by the egress policy. It names the host (with the port when known) and the
/// rule, never the path or query, which may carry tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("egress denied: {}; {}", self.reason(), ALLOW_HINT)]
pub struct EgressDenied {
    /// `host` or `host:port` as the request named it.
    pub host: String,
    /// The address that was refused, when it differs from what the host says (a resolved name, an
    /// IPv4 address written as IPv6).
    pub address: Option<IpAddr>,
    pub refusal: Refusal,
}

/// What [`EgressDenied`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The address falls under a default rule.
    Rule(Rule),
    /// The host is trusted on other ports only.
    Port { allowed: Vec<u16> },
    /// A scheme other than http and https.
    Scheme(String),
}

const ALLOW_HINT: &str = "requests built by flows reach public addresses, the connections of idflow.yaml and what its `egress.allow` lists";

impl EgressDenied {
    /// Why the request was refused, without the hint.
    pub fn reason(&self) -> String {
        match (&self.refusal, self.address) {
            (Refusal::Rule(rule), Some(address)) => {
                format!("`{}` reaches {address}, {}", self.host, rule.describe())
            }
            (Refusal::Rule(rule), None) => format!("`{}` is {}", self.host, rule.describe()),
            (Refusal::Port { allowed }, _) => {
                let ports: Vec<String> = allowed.iter().map(u16::to_string).collect();
                format!(
                    "`{}` is trusted on port {} only",
                    self.host,
                    ports.join(", ")
                )
            }
            (Refusal::Scheme(scheme), _) => {
                format!("`{scheme}:` is not http or https")
            }
        }
    }

    /// The rule that refused the request, when an address rule did.
    pub fn rule(&self) -> Option<Rule> {
        match self.refusal {
            Refusal::Rule(rule) => Some(rule),
            _ => None,
        }
    }

    /// The refusal inside an error chain (reqwest wraps resolver and redirect-policy errors).
    pub fn find_in<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e EgressDenied> {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(denied) = error.downcast_ref::<EgressDenied>() {
                return Some(denied);
            }
            current = error.source();
        }
        None
    }
}

/// Where requests built by flows may go: the default rules, the allow entries and this host's
/// addresses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EgressPolicy {
    /// `egress.allow` entries, then the origins of the configured connections.
    allow: Vec<Allow>,
    /// This host's addresses (canonical).
    own: Vec<IpAddr>,
}

impl EgressPolicy {
    /// A policy trusting `allow` and the origins of `connections` (the `domain`, `base_url` and
    /// `token_url` of each connection and of its `auth`), as `idflow.yaml` configures them (see
    /// `ProjectConfig::egress_policy`). This host's own addresses are added with
    /// [`EgressPolicy::with_own_addresses`] by whoever can find them.
    pub fn new<'c>(
        allow: &[Allow],
        connections: impl IntoIterator<Item = &'c Value>,
    ) -> EgressPolicy {
        let mut allow = allow.to_vec();
        for connection in connections {
            let auth = connection.get("auth").into_iter();
            for map in std::iter::once(connection)
                .chain(auth)
                .filter_map(Value::as_object)
            {
                for key in CONNECTION_URL_KEYS {
                    let Some(text) = map.get(*key).and_then(Value::as_str) else {
                        continue;
                    };
                    if let Some(origin) = connection_url(text).as_ref().and_then(Allow::origin_of)
                        && !allow.contains(&origin)
                    {
                        allow.push(origin);
                    }
                }
            }
        }
        EgressPolicy {
            allow,
            own: Vec::new(),
        }
    }

    /// The same policy with `own` as this host's addresses (tests pick them).
    pub fn with_own_addresses(mut self, own: Vec<IpAddr>) -> EgressPolicy {
        self.own = own.into_iter().map(|ip| ip.to_canonical()).collect();
        self
    }

    /// The allow entries, configured ones first.
    pub fn allowed(&self) -> &[Allow] {
        &self.allow
    }

    /// Checks a URL before it is requested (first request and every redirect). An address host is
    /// decided here; a name is refused here when it is trusted on other ports only or is a
    /// `localhost` name, and otherwise left to the connector's resolver, which sees its addresses.
    pub fn check_url(&self, url: &Url) -> Result<(), EgressDenied> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressDenied {
                host: url.host_str().unwrap_or_default().to_owned(),
                address: None,
                refusal: Refusal::Scheme(url.scheme().to_owned()),
            });
        }
        let (Some(target), Some(port)) = (Target::of_url(url), url.port_or_known_default()) else {
            return Err(EgressDenied {
                host: String::new(),
                address: None,
                refusal: Refusal::Rule(Rule::Unspecified),
            });
        };
        let host = match url.host_str() {
            Some(host) => format!("{host}:{port}"),
            None => port.to_string(),
        };
        if self.allow.iter().any(|entry| entry.covers(&target, port)) {
            return Ok(());
        }
        if let Target::Name(_) = target {
            let allowed: Vec<u16> = self
                .allow
                .iter()
                .filter(|entry| entry.covers_host(&target))
                .filter_map(Allow::port)
                .collect();
            if !allowed.is_empty() {
                // The resolver trusts a name whatever the port (it never sees one), so a name trusted
                // on some ports is refused on every other one here, before anything is resolved.
                return Err(EgressDenied {
                    host,
                    address: None,
                    refusal: Refusal::Port { allowed },
                });
            }
        }
        match target {
            Target::Ip(ip) => match self.denial(ip) {
                None => Ok(()),
                Some(rule) => {
                    let written = url.host_str().unwrap_or_default();
                    let plain = written.trim_start_matches('[').trim_end_matches(']');
                    let address = (plain.parse::<IpAddr>().ok() != Some(ip)).then_some(ip);
                    Err(EgressDenied {
                        host,
                        address,
                        refusal: Refusal::Rule(rule),
                    })
                }
            },
            Target::Name(name) if name == "localhost" || name.ends_with(".localhost") => {
                Err(EgressDenied {
                    host,
                    address: None,
                    refusal: Refusal::Rule(Rule::Loopback),
                })
            }
            Target::Name(_) => Ok(()),
        }
    }

    /// Checks the addresses a name resolved to: all of them must be allowed, or the name is
    /// trusted by an entry (on any port: [`EgressPolicy::check_url`] has refused other ports).
    pub fn check_resolved(&self, name: &str, addresses: &[IpAddr]) -> Result<(), EgressDenied> {
        let target = Target::Name(normalise_name(name));
        if self.allow.iter().any(|entry| entry.covers_host(&target)) {
            return Ok(());
        }
        for address in addresses {
            if let Some(rule) = self.denial(*address) {
                return Err(EgressDenied {
                    host: name.to_owned(),
                    address: Some(*address),
                    refusal: Refusal::Rule(rule),
                });
            }
        }
        Ok(())
    }

    /// The rule refusing an address on any port, or `None` when it may be reached. An entry that
    /// names a port does not count: the resolver never knows the port.
    fn denial(&self, ip: IpAddr) -> Option<Rule> {
        let target = Target::Ip(ip.to_canonical());
        if self
            .allow
            .iter()
            .any(|entry| entry.port().is_none() && entry.covers_host(&target))
        {
            return None;
        }
        let canonical = ip.to_canonical();
        if self.own.contains(&canonical) {
            return Some(Rule::OwnAddress);
        }
        classify(canonical)
    }
}

/// A connection's URL setting, read as the connectors read it (a bare host means HTTPS).
fn connection_url(text: &str) -> Option<Url> {
    let text = text.trim();
    let url = if text.contains("://") {
        Url::parse(text).ok()?
    } else {
        Url::parse(&format!("https://{text}")).ok()?
    };
    matches!(url.scheme(), "http" | "https").then_some(url)
}

#[cfg(test)]
mod tests;
