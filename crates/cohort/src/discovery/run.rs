//! The polling loop of one strategy: look up, note what changed, forget
//! what has been gone long enough, dial what is not connected.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::lookup::Lookup;
use super::state::{Found, State};
use super::{lock, DiscoveryError, Strategy, StrategyStatus};
use crate::core::pid::NodeName;
use crate::core::proto::RefuseReason;
use crate::core::ConnectError;
use crate::runtime::WeakNode;
use crate::Node;

/// A connection attempt to a discovered address is abandoned after this.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A lookup is abandoned after the interval, or this when it is longer.
const MIN_LOOKUP_BOUND: Duration = Duration::from_secs(5);

impl Node {
    /// Starts a discovery strategy: every `interval` it looks peers up and
    /// connects to those not connected yet. Discovery only adds: a failed or
    /// empty lookup changes nothing. Runs until the node stops; see
    /// [`crate::discovery`].
    ///
    /// ```no_run
    /// # async fn demo(node: cohort_registry::Node) -> Result<(), Box<dyn std::error::Error>> {
    /// use cohort_registry::discovery::Strategy;
    /// node.discover(Strategy::parse("srv:_cohort._tcp.cohort.default.svc.cluster.local")?)?;
    /// node.discover(Strategy::parse("file:/etc/cohort/seeds")?)?;
    /// for s in node.discovery() {
    ///     println!("{}: {} lookups, {} errors", s.strategy, s.lookups, s.errors);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn discover(&self, strategy: Strategy) -> Result<(), DiscoveryError> {
        let state = start(self, strategy)?;
        lock(self.discovery_list()).push(state);
        Ok(())
    }

    /// The discovery strategies started with [`Node::discover`]: each one's
    /// last result, error and counters.
    pub fn discovery(&self) -> Vec<StrategyStatus> {
        let list = lock(self.discovery_list()).clone();
        let mut up = self.nodes();
        up.extend(self.nodes_hidden());
        list.iter().map(|s| s.status(&up)).collect()
    }
}

/// This node's own addresses: its listen address and, when it listens on
/// every interface, each interface's address with its port.
fn own_addrs(local: &str) -> BTreeSet<String> {
    let mut own = BTreeSet::from([local.to_string()]);
    if let Ok(a) = local.parse::<SocketAddr>() {
        if a.ip().is_unspecified() {
            let mut ips = vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ];
            if let Ok(ifs) = if_addrs::get_if_addrs() {
                ips.extend(ifs.iter().map(|i| i.ip()));
            }
            own.extend(
                ips.into_iter()
                    .map(|ip| SocketAddr::new(ip, a.port()).to_string()),
            );
        }
    }
    own
}

/// Checks `strategy` and starts its loop on `node`.
fn start(node: &Node, strategy: Strategy) -> Result<Arc<State>, DiscoveryError> {
    strategy.check()?;
    let lookup = Lookup::new(&strategy)?;
    let found = Found {
        own: own_addrs(&node.local_addr()),
        ..Found::default()
    };
    let state = Arc::new(State {
        strategy,
        inner: Mutex::new(found),
    });
    let own_port = node
        .local_addr()
        .parse::<SocketAddr>()
        .map(|a| a.port())
        .unwrap_or(0);
    info!(node = %node.name(), strategy = %state.strategy.source, "discovery started");
    node.add_task(tokio::spawn(run(
        state.clone(),
        node.downgrade(),
        lookup,
        own_port,
    )));
    Ok(state)
}

async fn run(state: Arc<State>, node: WeakNode, mut lookup: Lookup, own_port: u16) {
    let bound = state.strategy.interval.max(MIN_LOOKUP_BOUND);
    loop {
        let result = match tokio::time::timeout(bound, lookup.run(own_port)).await {
            Ok(r) => r,
            Err(_) => Err(format!("lookup timed out after {bound:?}")),
        };
        let Some(node) = node.upgrade() else {
            return;
        };
        let dial = state.apply(&node, result);
        for addr in dial {
            tokio::spawn(dial_one(state.clone(), node.clone(), addr));
        }
        drop(node);
        tokio::time::sleep(state.strategy.interval).await;
    }
}

impl State {
    /// Takes a lookup's result into account; returns the addresses to dial.
    fn apply(&self, node: &Node, result: Result<Vec<String>, String>) -> Vec<String> {
        let what = &self.strategy.source;
        let now = Instant::now();
        let mut up = node.nodes();
        up.extend(node.nodes_hidden());
        let mut s = lock(&self.inner);
        s.lookups += 1;
        s.last_lookup = Some(SystemTime::now());
        // Whether the lookup found anything at all: only this node itself
        // is an answer (the cluster is this node); nothing is not.
        let mut found_any = false;
        let addrs = match result {
            Err(e) => {
                s.errors += 1;
                if s.last_error.as_ref() != Some(&e) {
                    warn!(strategy = %what, error = %e, "discovery lookup failed; nothing changes");
                } else {
                    debug!(strategy = %what, error = %e, "discovery lookup failed again");
                }
                s.last_error = Some(e);
                Vec::new()
            }
            Ok(addrs) => {
                if s.last_error.take().is_some() {
                    info!(strategy = %what, "discovery lookup works again");
                }
                found_any = !addrs.is_empty();
                let addrs: Vec<String> = addrs.into_iter().filter(|a| !s.own.contains(a)).collect();
                s.last_ok = s.last_lookup;
                if addrs != s.last_result {
                    let old: BTreeSet<&String> = s.last_result.iter().collect();
                    let new: BTreeSet<&String> = addrs.iter().collect();
                    let added: Vec<&&String> = new.difference(&old).collect();
                    let removed: Vec<&&String> = old.difference(&new).collect();
                    if !found_any {
                        info!(strategy = %what, ?removed, "discovery found nothing; nothing changes");
                    } else {
                        info!(strategy = %what, ?added, ?removed, "discovery: the set of addresses changed");
                    }
                }
                s.last_result = addrs.clone();
                addrs
            }
        };
        if !found_any {
            // A failed or empty lookup changes nothing: no address counts
            // as gone, nothing is forgotten; known ones are still dialed.
            return self.to_dial(&mut s, &up);
        }
        let listed: BTreeSet<&String> = addrs.iter().collect();
        for a in &addrs {
            s.entries.entry(a.clone()).or_default().missing_since = None;
        }
        for (a, e) in s.entries.iter_mut() {
            if !listed.contains(a) {
                e.missing_since.get_or_insert(now);
            }
        }
        let expired: Vec<String> = s
            .entries
            .iter()
            .filter(|(_, e)| {
                !e.dialing
                    && e.missing_since
                        .is_some_and(|t| now.duration_since(t) >= self.strategy.forget_after)
            })
            .map(|(a, _)| a.clone())
            .collect();
        for a in expired {
            let forget = match &s.entries[&a].node {
                // Still reachable: it stays.
                Some(n) if up.contains(n) => false,
                Some(n) => {
                    let gone = node.forget(n) || !node.redialing().contains(n);
                    if gone {
                        info!(strategy = %what, addr = %a, node = %n, "discovery: forgot a node gone from the results and unreachable");
                    }
                    gone
                }
                None => true,
            };
            if forget {
                let e = s.entries.remove(&a).expect("present");
                if e.node.is_some() {
                    s.forgotten += 1;
                }
            }
        }
        self.to_dial(&mut s, &up)
    }

    /// Listed addresses whose node is not connected and not being dialed.
    fn to_dial(&self, s: &mut Found, up: &[NodeName]) -> Vec<String> {
        let mut out = Vec::new();
        for (a, e) in s.entries.iter_mut() {
            let connected = e.node.as_ref().is_some_and(|n| up.contains(n));
            if e.missing_since.is_none() && !e.dialing && !connected {
                e.dialing = true;
                out.push(a.clone());
            }
        }
        out
    }
}

async fn dial_one(state: Arc<State>, node: Node, addr: String) {
    let r = tokio::time::timeout(DIAL_TIMEOUT, node.connect(&addr)).await;
    drop(node);
    let what = &state.strategy.source;
    let mut s = lock(&state.inner);
    let r = match r {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout),
    };
    match r {
        Err(ConnectError::Refused(RefuseReason::SameName)) => {
            info!(strategy = %what, %addr, "discovery: this address is this node itself; skipped from now on");
            s.own.insert(addr.clone());
            s.entries.remove(&addr);
            return;
        }
        Err(ConnectError::ShuttingDown) => return,
        _ => {}
    }
    let Some(e) = s.entries.get_mut(&addr) else {
        return;
    };
    e.dialing = false;
    match r {
        Ok(name) => {
            if e.node.as_ref() != Some(&name) {
                info!(strategy = %what, %addr, node = %name, "discovery: connected to a discovered node");
            }
            e.node = Some(name);
            e.error = None;
        }
        Err(err) => {
            debug!(strategy = %what, %addr, error = %err, "discovery: cannot connect yet");
            e.error = Some(err.to_string());
        }
    }
}
