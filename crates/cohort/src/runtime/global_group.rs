//! The runtime side of global groups: `global_groups`, `own_nodes`, `info`,
//! `monitor_nodes`, `sync`, and `whereis`/`send`/`registered_names` with a
//! `Where` (a node or a group).

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::global_group_state::GroupNodeEvent;
use super::{EventStream, Node};
use crate::core::global_group::{Answer, GlobalGroupsInfo, Query};
use crate::core::pid::{NodeName, Pid};

/// How long a query to another node may take before the next one is tried.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a lookup or send goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Where {
    /// The name table as seen by this node.
    Node(NodeName),
    /// The name table of this global group (asked of one reachable node).
    Group(String),
}

impl Node {
    /// The own group's name and the other groups' names in configuration
    /// order; `None` without configuration (OTP returns `undefined`).
    pub fn global_groups(&self) -> Option<(String, Vec<String>)> {
        let info = self.global_group_info();
        let own = info.own_group_name?;
        Some((own, info.other_groups.into_iter().map(|g| g.name).collect()))
    }

    /// The nodes of the own group that this node is synced with, plus this
    /// node, sorted. Without configuration: this node and every connected
    /// visible node.
    pub fn own_nodes(&self) -> Vec<NodeName> {
        let info = self.global_group_info();
        let mut v = if info.own_group_name.is_some() {
            info.synced_nodes
        } else {
            self.nodes()
        };
        v.push(self.name().clone());
        v.sort();
        v
    }

    /// The global-group state (`global_group:info()`).
    pub fn global_group_info(&self) -> GlobalGroupsInfo {
        let nodes = self.nodes();
        self.shared().with(|core, _, _| core.groups().info(&nodes))
    }

    /// How many `monitor_nodes` subscribers are active.
    pub fn global_group_monitors(&self) -> usize {
        let mut m = self
            .shared()
            .global_group_reqs
            .monitors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.retain(|s| s.receiver_count() > 0);
        m.len()
    }

    /// Subscribes to own-group node up/down (`monitor_nodes(true)`); a node
    /// is up only after its group definition matched. Drop the receiver to
    /// unsubscribe.
    pub fn monitor_nodes(&self) -> EventStream<GroupNodeEvent> {
        let (tx, rx) = super::stream::channel();
        self.shared()
            .global_group_reqs
            .monitors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    /// Re-checks the group definition with every own-group node and waits
    /// until each answered (a node that differs ends in `sync_error`).
    pub async fn global_group_sync(&self) {
        let s = self.shared();
        let req = s.global_group_reqs.req();
        let (tx, rx) = oneshot::channel();
        s.global_group_reqs.syncs.insert(req, tx);
        s.with(|core, now, _| core.groups_sync(req, now));
        let _ = tokio::time::timeout(ASK_TIMEOUT, rx).await;
        s.global_group_reqs.syncs.remove(&req);
    }

    async fn ask(&self, node: &NodeName, query: Query) -> Option<Answer> {
        let s = self.shared();
        if !s.links.contains_key(node) {
            let addr = s.with(|core, _, _| core.cluster().known_addr(node).map(str::to_string))?;
            let got = tokio::time::timeout(ASK_TIMEOUT, self.connect(&addr))
                .await
                .ok()?
                .ok()?;
            if &got != node {
                return None;
            }
        }
        let req = s.global_group_reqs.req();
        let (tx, rx) = oneshot::channel();
        s.global_group_reqs.answers.insert(req, tx);
        s.with(|core, now, _| core.groups_ask(node, query, req, now));
        let answer = tokio::time::timeout(ASK_TIMEOUT, rx)
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten();
        s.global_group_reqs.answers.remove(&req);
        answer
    }

    /// The nodes to ask for group `g`, up ones first.
    fn candidates(&self, group: &str) -> Vec<NodeName> {
        let info = self.global_group_info();
        let nodes = info
            .other_groups
            .iter()
            .find(|g| g.name == group)
            .map(|g| g.nodes.clone())
            .unwrap_or_default();
        let (mut up, down): (Vec<_>, Vec<_>) = nodes
            .into_iter()
            .partition(|n| self.shared().links.contains_key(n));
        up.extend(down);
        up
    }

    fn is_own_group(&self, group: &str) -> bool {
        self.global_group_info().own_group_name.as_deref() == Some(group)
    }

    /// Asks `query` where `at` says; `None` when nobody there answered.
    async fn ask_where(&self, at: &Where, query: Query) -> Option<Answer> {
        match at {
            Where::Node(n) if n == self.name() => Some(self.answer_locally(query)),
            Where::Node(n) => self.ask(n, query).await,
            Where::Group(g) if self.is_own_group(g) => Some(self.answer_locally(query)),
            Where::Group(g) => {
                for n in self.candidates(g) {
                    if let Some(a) = self.ask(&n, query.clone()).await {
                        return Some(a);
                    }
                }
                None
            }
        }
    }

    fn answer_locally(&self, query: Query) -> Answer {
        let table = self.names();
        match query {
            Query::Whereis(name) => Answer::Whereis(table.whereis(&name)),
            Query::RegisteredNames => {
                let mut v = table.registered_names();
                v.sort();
                Answer::Names(v)
            }
            Query::Send {
                name,
                from,
                payload,
            } => {
                let to = table.whereis(&name);
                if let Some(pid) = &to {
                    self.shared().send(pid, from, payload);
                }
                Answer::Sent(to)
            }
        }
    }

    /// `global_group:whereis_name`: with `at`, the holder of `name` there;
    /// without, the own group first (a local read), then each other group
    /// in configuration order, asking one reachable node of each.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use cohort_registry::{GlobalGroupDef, GlobalGroupsConfig, Node, NodeName, Publish, Where};
    ///
    /// // Two global groups of one node each: separate name spaces.
    /// let n = |s: &str| NodeName::new(s).unwrap();
    /// let cfg = GlobalGroupsConfig::new([
    ///     GlobalGroupDef::new("east", Publish::Normal, [n("a@127.0.0.1")]),
    ///     GlobalGroupDef::new("west", Publish::Normal, [n("b@127.0.0.1")]),
    /// ]);
    /// let start = |name: &'static str| {
    ///     Node::builder().name(name).cookie("secret").global_groups(cfg.clone()).start()
    /// };
    /// let (a, b) = (start("a@127.0.0.1").await?, start("b@127.0.0.1").await?);
    /// b.connect(&a.local_addr()).await?;
    ///
    /// let info = a.global_group_info();
    /// assert_eq!(info.own_group_name.as_deref(), Some("east"));
    /// assert_eq!(a.global_groups(), Some(("east".into(), vec!["west".into()])));
    ///
    /// // The same name in both groups, held by different processes.
    /// let (pa, pb) = (a.spawn(), b.spawn());
    /// a.names().register("leader", pa.pid()).await?;
    /// b.names().register("leader", pb.pid()).await?;
    /// let west = Where::Group("west".into());
    /// assert_eq!(a.whereis_at(Some(&west), "leader").await.as_ref(), Some(pb.pid()));
    /// assert_eq!(a.whereis_at(None, "leader").await.as_ref(), Some(pa.pid()));
    /// assert_eq!(a.whereis_at(Some(&Where::Node(b.name().clone())), "leader").await.as_ref(), Some(pb.pid()));
    /// # Ok(()) }
    /// ```
    pub async fn whereis_at(&self, at: Option<&Where>, name: &str) -> Option<Pid> {
        if let Some(at) = at {
            return match self.ask_where(at, Query::Whereis(name.into())).await {
                Some(Answer::Whereis(p)) => p,
                _ => None,
            };
        }
        if let Some(p) = self.names().whereis(name) {
            return Some(p);
        }
        for g in self
            .global_groups()
            .map(|(_, others)| others)
            .unwrap_or_default()
        {
            if let Some(Answer::Whereis(Some(p))) = self
                .ask_where(&Where::Group(g), Query::Whereis(name.into()))
                .await
            {
                return Some(p);
            }
        }
        None
    }

    /// `global_group:registered_names(Where)`, sorted; empty when nobody
    /// there answered.
    pub async fn registered_names_at(&self, at: &Where) -> Vec<String> {
        match self.ask_where(at, Query::RegisteredNames).await {
            Some(Answer::Names(v)) => v,
            _ => Vec::new(),
        }
    }

    /// `global_group:send`: delivers `payload` to the holder of `name`
    /// (found as [`Node::whereis_at`] finds it); returns that pid, or
    /// `None` when no one holds the name.
    pub async fn send_at(
        &self,
        at: Option<&Where>,
        name: &str,
        payload: impl Into<Bytes>,
    ) -> Option<Pid> {
        let payload = payload.into();
        let query = |p: Bytes| Query::Send {
            name: name.into(),
            from: None,
            payload: p,
        };
        if let Some(at) = at {
            return match self.ask_where(at, query(payload)).await {
                Some(Answer::Sent(p)) => p,
                _ => None,
            };
        }
        if let Some(p) = self.names().whereis(name) {
            self.send(&p, payload);
            return Some(p);
        }
        for g in self
            .global_groups()
            .map(|(_, others)| others)
            .unwrap_or_default()
        {
            if let Some(Answer::Sent(Some(p))) = self
                .ask_where(&Where::Group(g), query(payload.clone()))
                .await
            {
                return Some(p);
            }
        }
        None
    }
}
