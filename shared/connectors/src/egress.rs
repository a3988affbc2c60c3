//! The egress policy ([`domain::egress`]) wired into reqwest, where connections are made, so nothing
//! can change the answer between check and use:
//! - [`EgressPolicy::check_url`] decides URLs whose host is an address (those are never resolved)
//!   and every name the policy can decide without DNS, before the first request and on every redirect
//!   ([`redirect_policy`]);
//! - [`EgressResolver`], the reqwest resolver of [`CheckedClients`], resolves each remaining name once
//!   and refuses the connection when any of its addresses is denied: the addresses checked are the
//!   addresses connected to, so DNS rebinding cannot slip past.
//!
//! Connectors whose destinations come from `idflow.yaml` alone (an Okta org, Slack, SMTP) are trusted
//! by construction; their reqwest clients ([`configured_client`]) never follow a redirect, so no
//! answer can send their credentials elsewhere.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use futures::future::BoxFuture;

pub use domain::egress::{Allow, EgressDenied, EgressPolicy, Refusal, Rule, classify};
use domain::model::ProjectConfig;

/// The user agent of every idflow HTTP client.
pub const USER_AGENT: &str = concat!("idflow/", env!("CARGO_PKG_VERSION"));

/// This host's own addresses: the source address its IPv4 and IPv6 traffic leaves from (the OS is
/// asked which address it would use for a documentation-range destination; no packet is sent).
/// Found once per process; an address family without a route contributes nothing.
pub fn own_addresses() -> &'static [IpAddr] {
    static OWN: OnceLock<Vec<IpAddr>> = OnceLock::new();
    OWN.get_or_init(|| {
        let probes: [(SocketAddr, SocketAddr); 2] = [
            (
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 9)),
            ),
            (
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
                SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9)),
            ),
        ];
        let mut found = Vec::new();
        for (bind, probe) in probes {
            let Ok(socket) = std::net::UdpSocket::bind(bind) else {
                continue;
            };
            if socket.connect(probe).is_err() {
                continue;
            }
            if let Ok(local) = socket.local_addr()
                && !local.ip().is_unspecified()
                && !local.ip().is_loopback()
            {
                found.push(local.ip().to_canonical());
            }
        }
        found
    })
}

/// Name resolution behind [`EgressResolver`]: the system's, or a fixed table in tests.
pub trait Lookup: Send + Sync {
    /// The addresses of `host`.
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// The system resolver (`getaddrinfo` on a blocking thread, as reqwest's default does).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let host = host.to_owned();
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addresses.map(|address| address.ip()).collect())
        })
    }
}

/// The reqwest resolver that enforces a policy: it resolves a name once and hands the connector
/// only addresses the policy allows, or an [`EgressDenied`].
pub struct EgressResolver {
    policy: Arc<EgressPolicy>,
    lookup: Arc<dyn Lookup>,
}

impl EgressResolver {
    pub fn new(policy: Arc<EgressPolicy>, lookup: Arc<dyn Lookup>) -> EgressResolver {
        EgressResolver { policy, lookup }
    }
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = lookup.lookup(&host).await?;
            if addresses.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("`{host}` has no address"),
                )
                .into());
            }
            policy.check_resolved(&host, &addresses)?;
            let addresses: reqwest::dns::Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|address| SocketAddr::new(address, 0)),
            );
            Ok(addresses)
        })
    }
}

/// More than `max` redirects in a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("more than {max} redirects")]
pub struct TooManyRedirects {
    pub max: usize,
}

/// Follows at most `max` redirects, each checked against `policy` before it is requested.
pub fn redirect_policy(policy: Arc<EgressPolicy>, max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            return attempt.error(TooManyRedirects { max });
        }
        match policy.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(denied) => attempt.error(denied),
        }
    })
}

/// A reqwest client for destinations that come from `idflow.yaml` alone (an Okta org, Slack's API or
/// webhook): rustls, idflow's user agent, and no redirects, so no answer can send the request and
/// its credentials elsewhere.
pub fn configured_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The reqwest clients of a connector whose destinations flows build: one per policy, rebuilt when
/// the project config (and so the policy) changes, so hot reloads of `idflow.yaml` apply to the
/// next call while calls in flight keep the policy they started with.
pub struct CheckedClients {
    lookup: Arc<dyn Lookup>,
    max_redirects: usize,
    /// This host's addresses when a test fixes them.
    own: Option<Vec<IpAddr>>,
    current: Mutex<(Arc<EgressPolicy>, reqwest::Client)>,
}

impl CheckedClients {
    /// Clients on the system resolver following at most `max_redirects` redirects.
    pub fn new(max_redirects: usize) -> Result<CheckedClients, reqwest::Error> {
        CheckedClients::with_lookup(Arc::new(SystemLookup), max_redirects)
    }

    /// Clients resolving names through `lookup`.
    pub fn with_lookup(
        lookup: Arc<dyn Lookup>,
        max_redirects: usize,
    ) -> Result<CheckedClients, reqwest::Error> {
        let policy = Arc::new(
            ProjectConfig::default()
                .egress_policy()
                .with_own_addresses(own_addresses().to_vec()),
        );
        let client = checked_client(policy.clone(), lookup.clone(), max_redirects)?;
        Ok(CheckedClients {
            lookup,
            max_redirects,
            own: None,
            current: Mutex::new((policy, client)),
        })
    }

    /// Fixes this host's addresses (tests).
    pub fn with_own_addresses(mut self, own: Vec<IpAddr>) -> CheckedClients {
        self.own = Some(own);
        self
    }

    /// The policy of `project` and a client that enforces it.
    pub fn for_project(
        &self,
        project: &ProjectConfig,
    ) -> Result<(Arc<EgressPolicy>, reqwest::Client), reqwest::Error> {
        let own = self.own.clone().unwrap_or_else(|| own_addresses().to_vec());
        let policy = project.egress_policy().with_own_addresses(own);
        {
            let current = self.lock();
            if *current.0 == policy {
                return Ok((current.0.clone(), current.1.clone()));
            }
        }
        let policy = Arc::new(policy);
        let client = checked_client(policy.clone(), self.lookup.clone(), self.max_redirects)?;
        *self.lock() = (policy.clone(), client.clone());
        Ok((policy, client))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Arc<EgressPolicy>, reqwest::Client)> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A client that resolves through [`EgressResolver`] and checks every redirect. System proxies are
/// not used: a proxy would resolve names itself, out of the policy's sight.
fn checked_client(
    policy: Arc<EgressPolicy>,
    lookup: Arc<dyn Lookup>,
    max_redirects: usize,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(USER_AGENT)
        .no_proxy()
        .dns_resolver(Arc::new(EgressResolver::new(policy.clone(), lookup)))
        .redirect(redirect_policy(policy, max_redirects))
        .build()
}

#[cfg(test)]
mod tests {
    use super::own_addresses;

    #[test]
    fn own_addresses_are_addresses_of_this_host() {
        // Only an address of this host can be bound: each one found must be.
        for address in own_addresses() {
            std::net::TcpListener::bind((*address, 0)).unwrap_or_else(|error| {
                panic!("{address} is not an address of this host: {error}")
            });
        }
    }
}
