//! The bridge's state machine: one task that owns the connections' senders,
//! the pid tables, the bridged scopes and the proxies, and answers the BEAM
//! side as OTP 25's `pg` scope process, `global_name_server` (as a node
//! holding no names) and `net_kernel` (`is_auth`) would.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cohort::{ExitReason, Message as CMessage, MonitorRef, Node, PgEvent, PgEventKind, Pid};
use eetf::{Atom, Binary, List, Pid as ErlPid, Reference, Term, Tuple};
use erl_dist::message::Message;
use erl_dist::term::PidOrAtom;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Retired proxy pids remembered so their late pg events are not taken for
/// Cohort members (bounded).
const RETIRED: usize = 65_536;

/// Inputs of the bridge task.
pub(crate) enum Event {
    /// A handshake finished.
    Up {
        id: u64,
        node: String,
        creation: u32,
        published: bool,
        tx: mpsc::Sender<Message>,
    },
    /// A control message (with its payload) from connection `id`.
    Msg { id: u64, msg: Message },
    /// Connection `id` is gone.
    Closed { id: u64, node: String },
    /// A change of bridged scope number `scope` on the Cohort side.
    Pg { scope: usize, ev: PgEvent },
    /// A Cohort process sent bytes to the proxy of `to`.
    ProxyData { to: ErlPid, payload: Bytes },
    /// The library asked to send a term to a BEAM pid.
    Send { to: ErlPid, term: Term },
}

/// Pid tables shared with the [`crate::Bridge`] handle.
#[derive(Default)]
pub(crate) struct Tables {
    /// Cohort pid -> the Erlang pid minted for it.
    pub to_erl: HashMap<Pid, ErlPid>,
    /// (id, serial) of a minted Erlang pid -> the Cohort pid.
    pub to_cohort: HashMap<(u32, u32), Pid>,
    /// BEAM pid -> the Cohort proxy standing for it.
    pub proxies: HashMap<ErlPid, Pid>,
    /// The Cohort proxy -> the BEAM pid it stands for.
    pub beam_of: HashMap<Pid, ErlPid>,
    /// Nodes connected now.
    pub nodes: Vec<String>,
}

struct Conn {
    node: String,
    published: bool,
    tx: mpsc::Sender<Message>,
}

struct Remote {
    mref: Reference,
    groups: HashMap<String, Vec<ErlPid>>,
}

struct ScopeState {
    atom: Atom,
    pid: ErlPid,
    scope: cohort::Scope,
    /// Cohort members advertised to BEAM (each pid once per membership).
    local: HashMap<String, Vec<Pid>>,
    /// BEAM scope processes of this scope and what each reported.
    remote: HashMap<ErlPid, Remote>,
}

struct Proxy {
    pid: Pid,
    count: usize,
    task: JoinHandle<()>,
}

pub(crate) struct State {
    me: Atom,
    creation: u32,
    node: Node,
    events: mpsc::Sender<Event>,
    tables: Arc<Mutex<Tables>>,
    next_pid: u32,
    next_ref: u32,
    conns: HashMap<u64, Conn>,
    by_node: HashMap<String, u64>,
    scopes: Vec<ScopeState>,
    proxies: HashMap<ErlPid, Proxy>,
    proxy_pids: HashSet<Pid>,
    retired: VecDeque<Pid>,
    /// Our pid for messages from `global_name_server` and `net_kernel` answers.
    sys_pid: ErlPid,
    /// BEAM monitors on minted pids: target -> (monitoring pid, ref).
    beam_monitors: HashMap<Pid, Vec<(ErlPid, Reference)>>,
    /// The agent's monitors on the Cohort pids we minted.
    agent_monitors: HashMap<Pid, MonitorRef>,
    /// Ended Cohort processes whose pg leaves have not arrived yet (their
    /// minted pid is kept until then, so the leave can name it).
    dead: HashSet<Pid>,
}

fn atom(s: &str) -> Term {
    Atom::from(s).into()
}

fn tuple(v: Vec<Term>) -> Term {
    Tuple::from(v).into()
}

fn pids_term(pids: &[ErlPid]) -> Term {
    List::from(pids.iter().cloned().map(Term::from).collect::<Vec<_>>()).into()
}

/// Pids of `{join, _, _, PidOrPids}` and friends: one pid or a proper list of them.
fn pid_or_pids(t: &Term) -> Option<Vec<ErlPid>> {
    match t {
        Term::Pid(p) => Some(vec![p.clone()]),
        Term::List(l) => l
            .elements
            .iter()
            .map(|e| match e {
                Term::Pid(p) => Some(p.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn exit_term(r: &ExitReason) -> Term {
    match r {
        ExitReason::Normal => atom("normal"),
        ExitReason::Shutdown => atom("shutdown"),
        ExitReason::Killed(_) => atom("killed"),
        ExitReason::NoProc => atom("noproc"),
        ExitReason::NoConnection => atom("noconnection"),
        ExitReason::Other(s) => Binary::from(s.as_bytes().to_vec()).into(),
        other => Binary::from(other.to_string().into_bytes()).into(),
    }
}

/// Encodes a term in the external format (what Cohort processes receive).
pub(crate) fn encode(t: &Term) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    t.encode(&mut v).ok().map(|_| v)
}

impl State {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        me: &str,
        creation: u32,
        node: Node,
        events: mpsc::Sender<Event>,
        tables: Arc<Mutex<Tables>>,
        scopes: Vec<(String, cohort::Scope)>,
    ) -> State {
        let mut s = State {
            me: Atom::from(me),
            creation,
            node,
            events,
            tables,
            next_pid: 1,
            next_ref: 1,
            conns: HashMap::new(),
            by_node: HashMap::new(),
            scopes: Vec::new(),
            proxies: HashMap::new(),
            proxy_pids: HashSet::new(),
            retired: VecDeque::new(),
            sys_pid: ErlPid::new(me, 0, 0, creation),
            beam_monitors: HashMap::new(),
            agent_monitors: HashMap::new(),
            dead: HashSet::new(),
        };
        s.sys_pid = s.fresh_pid();
        for (name, scope) in scopes {
            let pid = s.fresh_pid();
            s.scopes.push(ScopeState {
                atom: Atom::from(name.as_str()),
                pid,
                scope,
                local: HashMap::new(),
                remote: HashMap::new(),
            });
        }
        s
    }

    fn fresh_pid(&mut self) -> ErlPid {
        let n = self.next_pid;
        self.next_pid = self.next_pid.wrapping_add(1).max(1);
        // Classic pid fields (15-bit id, 13-bit serial) so any OTP release reads them.
        ErlPid::new(
            self.me.name.as_str(),
            n & 0x7fff,
            (n >> 15) & 0x1fff,
            self.creation,
        )
    }

    fn fresh_ref(&mut self) -> Reference {
        let n = self.next_ref;
        self.next_ref = self.next_ref.wrapping_add(1);
        Reference {
            node: self.me.clone(),
            id: vec![n, 0, 0],
            creation: self.creation,
        }
    }

    fn is_proxy(&self, pid: &Pid) -> bool {
        self.proxy_pids.contains(pid)
    }

    /// The Erlang pid of a Cohort process, minted on first use; the agent
    /// monitors the process so the mapping ends with it.
    fn mint(&mut self, pid: &Pid, agent: &cohort::Process) -> ErlPid {
        if let Some(e) = self.tables.lock().unwrap().to_erl.get(pid) {
            return e.clone();
        }
        let e = self.fresh_pid();
        {
            let mut t = self.tables.lock().unwrap();
            t.to_erl.insert(pid.clone(), e.clone());
            t.to_cohort.insert((e.id, e.serial), pid.clone());
        }
        let mref = agent.monitor(pid);
        self.agent_monitors.insert(pid.clone(), mref);
        e
    }

    /// The snapshot of a bridged scope's Cohort members at start.
    pub(crate) fn seed(
        &mut self,
        i: usize,
        groups: Vec<(cohort::Group, Vec<Pid>)>,
        agent: &cohort::Process,
    ) {
        for (g, pids) in groups {
            self.pg_event(
                i,
                PgEvent::new(
                    self.scopes[i].scope.name().into(),
                    g,
                    PgEventKind::Join,
                    pids,
                    None,
                ),
                agent,
            );
        }
    }

    fn send_to(&mut self, node: &str, msg: Message) {
        let Some(id) = self.by_node.get(node).copied() else {
            return;
        };
        let full = match self.conns.get(&id) {
            Some(c) => c.tx.try_send(msg).is_err(),
            None => false,
        };
        if full {
            // The peer does not keep up: drop the connection rather than
            // lose a pg message silently; it resyncs on reconnect.
            tracing::warn!(peer = %node, "erlang peer does not keep up; dropping the connection");
            self.node_down(id);
        }
    }

    fn send_pid(&mut self, to: &ErlPid, term: Term) {
        let node = to.node.name.clone();
        self.send_to(&node, Message::send(to.clone(), term));
    }

    pub(crate) fn handle(&mut self, ev: Event, agent: &cohort::Process) {
        match ev {
            Event::Up {
                id,
                node,
                creation,
                published,
                tx,
            } => self.up(id, node, creation, published, tx),
            Event::Closed { id, node } => {
                if self.by_node.get(&node) == Some(&id) {
                    self.node_down(id);
                }
            }
            Event::Msg { id, msg } => {
                if self.conns.contains_key(&id) {
                    self.message(id, msg, agent);
                }
            }
            Event::Pg { scope, ev } => self.pg_event(scope, ev, agent),
            Event::ProxyData { to, payload } => {
                self.send_pid(&to, Binary::from(payload.to_vec()).into())
            }
            Event::Send { to, term } => self.send_pid(&to, term),
        }
    }

    fn up(
        &mut self,
        id: u64,
        node: String,
        creation: u32,
        published: bool,
        tx: mpsc::Sender<Message>,
    ) {
        if let Some(old) = self.by_node.get(&node).copied() {
            // A new incarnation or a replaced connection: the old one's
            // entries go first.
            self.node_down(old);
        }
        tracing::debug!(peer = %node, creation, "erlang session up");
        self.conns.insert(
            id,
            Conn {
                node: node.clone(),
                published,
                tx,
            },
        );
        self.by_node.insert(node.clone(), id);
        self.tables.lock().unwrap().nodes.push(node.clone());
        if published {
            // As pg's nodeup: `{Scope, Node} ! {discover, self()}`.
            for i in 0..self.scopes.len() {
                let (sp, sa) = (self.scopes[i].pid.clone(), self.scopes[i].atom.clone());
                let m = tuple(vec![atom("discover"), sp.clone().into()]);
                self.send_to(&node, Message::reg_send(sp, sa, m));
            }
        }
    }

    fn node_down(&mut self, id: u64) {
        let Some(conn) = self.conns.remove(&id) else {
            return;
        };
        self.by_node.remove(&conn.node);
        self.tables
            .lock()
            .unwrap()
            .nodes
            .retain(|n| n != &conn.node);
        for i in 0..self.scopes.len() {
            let gone: Vec<ErlPid> = self.scopes[i]
                .remote
                .keys()
                .filter(|p| p.node.name == conn.node)
                .cloned()
                .collect();
            for peer in gone {
                self.drop_peer(i, &peer);
            }
        }
        for mons in self.beam_monitors.values_mut() {
            mons.retain(|(from, _)| from.node.name != conn.node);
        }
        self.beam_monitors.retain(|_, v| !v.is_empty());
        let _ = conn.published;
    }

    fn drop_peer(&mut self, i: usize, peer: &ErlPid) {
        if let Some(r) = self.scopes[i].remote.remove(peer) {
            for (g, pids) in r.groups {
                self.remote_leave(i, &g, &pids);
            }
        }
    }

    // ---- BEAM -> Cohort: proxies ------------------------------------------

    fn remote_join(&mut self, i: usize, group: &str, pids: &[ErlPid]) {
        for p in pids {
            let proxy = match self.proxies.get_mut(p) {
                Some(x) => x,
                None => {
                    let mut proc = self.node.spawn();
                    let cpid = proc.pid().clone();
                    let events = self.events.clone();
                    let to = p.clone();
                    let task = tokio::spawn(async move {
                        while let Some(m) = proc.recv().await {
                            if let CMessage::Data { payload, .. } = m {
                                let ev = Event::ProxyData {
                                    to: to.clone(),
                                    payload,
                                };
                                if events.send(ev).await.is_err() {
                                    break;
                                }
                            }
                        }
                    });
                    self.proxy_pids.insert(cpid.clone());
                    {
                        let mut t = self.tables.lock().unwrap();
                        t.proxies.insert(p.clone(), cpid.clone());
                        t.beam_of.insert(cpid.clone(), p.clone());
                    }
                    self.proxies.entry(p.clone()).or_insert(Proxy {
                        pid: cpid,
                        count: 0,
                        task,
                    })
                }
            };
            proxy.count += 1;
            if let Err(e) = self.scopes[i].scope.join(group, &proxy.pid) {
                tracing::warn!(group, "erlang bridge: proxy join refused: {e}");
            }
        }
    }

    fn remote_leave(&mut self, i: usize, group: &str, pids: &[ErlPid]) {
        for p in pids {
            let Some(proxy) = self.proxies.get_mut(p) else {
                continue;
            };
            let _ = self.scopes[i].scope.leave(group, &proxy.pid);
            proxy.count = proxy.count.saturating_sub(1);
            if proxy.count == 0 {
                let proxy = self.proxies.remove(p).expect("present");
                proxy.task.abort();
                {
                    let mut t = self.tables.lock().unwrap();
                    t.proxies.remove(p);
                    t.beam_of.remove(&proxy.pid);
                }
                self.retired.push_back(proxy.pid);
                if self.retired.len() > RETIRED {
                    if let Some(old) = self.retired.pop_front() {
                        self.proxy_pids.remove(&old);
                    }
                }
            }
        }
    }

    /// Replaces what `peer` reported (pg's `handle_sync`).
    fn remote_sync(&mut self, i: usize, peer: &ErlPid, new: HashMap<String, Vec<ErlPid>>) {
        let old = match self.scopes[i].remote.get_mut(peer) {
            Some(r) => std::mem::replace(&mut r.groups, new.clone()),
            None => return,
        };
        for (g, pids) in &new {
            let before = old.get(g).cloned().unwrap_or_default();
            let (joined, left) = multiset_diff(&before, pids);
            self.remote_leave(i, g, &left);
            self.remote_join(i, g, &joined);
        }
        for (g, pids) in &old {
            if !new.contains_key(g) {
                self.remote_leave(i, g, pids);
            }
        }
    }

    // ---- Cohort -> BEAM -----------------------------------------------------

    fn pg_event(&mut self, i: usize, ev: PgEvent, agent: &cohort::Process) {
        let group = ev.group.to_string();
        let mut erl = Vec::new();
        match ev.kind {
            PgEventKind::Join => {
                for p in &ev.pids {
                    if self.is_proxy(p) {
                        continue;
                    }
                    self.scopes[i]
                        .local
                        .entry(group.clone())
                        .or_default()
                        .push(p.clone());
                    erl.push(self.mint(p, agent));
                }
            }
            PgEventKind::Leave => {
                for p in &ev.pids {
                    let Some(list) = self.scopes[i].local.get_mut(&group) else {
                        continue;
                    };
                    let Some(at) = list.iter().position(|x| x == p) else {
                        continue;
                    };
                    list.swap_remove(at);
                    if list.is_empty() {
                        self.scopes[i].local.remove(&group);
                    }
                    if let Some(e) = self.tables.lock().unwrap().to_erl.get(p) {
                        erl.push(e.clone());
                    }
                    if self.dead.contains(p) && !self.advertised(p) {
                        self.dead.remove(p);
                        self.unmint(p);
                    }
                }
            }
            PgEventKind::Meta => return,
            other => {
                tracing::warn!(kind = ?other, "a group event kind the Erlang bridge does not know; not forwarded");
                return;
            }
        }
        if erl.is_empty() {
            return;
        }
        let sp: Term = self.scopes[i].pid.clone().into();
        let g = atom(&group);
        let msg = match ev.kind {
            PgEventKind::Join => tuple(vec![atom("join"), sp, g, pids_term(&erl)]),
            _ => tuple(vec![
                atom("leave"),
                sp,
                pids_term(&erl),
                List::from(vec![g]).into(),
            ]),
        };
        let peers: Vec<ErlPid> = self.scopes[i].remote.keys().cloned().collect();
        for peer in peers {
            self.send_pid(&peer, msg.clone());
        }
    }

    fn sync_term(&self, i: usize) -> Term {
        let s = &self.scopes[i];
        let t = self.tables.lock().unwrap();
        let groups: Vec<Term> = s
            .local
            .iter()
            .map(|(g, pids)| {
                let erl: Vec<ErlPid> = pids
                    .iter()
                    .filter_map(|p| t.to_erl.get(p).cloned())
                    .collect();
                tuple(vec![atom(g), pids_term(&erl)])
            })
            .collect();
        tuple(vec![
            atom("sync"),
            s.pid.clone().into(),
            List::from(groups).into(),
        ])
    }

    // ---- messages from BEAM -------------------------------------------------

    fn message(&mut self, id: u64, msg: Message, agent: &cohort::Process) {
        tracing::trace!(?msg, "erlang bridge: received");
        match msg {
            Message::Send(m) => self.deliver_to_pid(id, &m.to_pid, m.message, agent),
            Message::SendTt(m) => self.deliver_to_pid(id, &m.to_pid, m.message, agent),
            Message::SendSender(m) => self.deliver_to_pid(id, &m.to_pid, m.message, agent),
            Message::SendSenderTt(m) => self.deliver_to_pid(id, &m.to_pid, m.message, agent),
            Message::RegSend(m) => {
                self.deliver_to_name(id, &m.from_pid, &m.to_name.name, m.message)
            }
            Message::RegSendTt(m) => {
                self.deliver_to_name(id, &m.from_pid, &m.to_name.name, m.message)
            }
            Message::MonitorP(m) => self.monitor_p(m.from_pid, m.to_proc, m.reference, agent),
            Message::DemonitorP(m) => {
                if let PidOrAtom::Pid(p) = &m.to_proc {
                    if let Some(c) = self.cohort_pid(p) {
                        if let Some(v) = self.beam_monitors.get_mut(&c) {
                            v.retain(|(_, r)| r != &m.reference);
                        }
                    }
                }
            }
            Message::MonitorPExit(m) => self.monitor_fired(&m.reference),
            Message::PayloadMonitorPExit(m) => self.monitor_fired(&m.reference),
            Message::UnlinkId(m) => {
                let node = m.from_pid.node.name.clone();
                self.send_to(&node, Message::unlink_id_ack(m.id, m.to_pid, m.from_pid));
            }
            other => {
                tracing::debug!(
                    "erlang bridge: ignoring {:?}",
                    std::mem::discriminant(&other)
                );
            }
        }
    }

    fn cohort_pid(&self, p: &ErlPid) -> Option<Pid> {
        if p.node != self.me || p.creation != self.creation {
            return None;
        }
        self.tables
            .lock()
            .unwrap()
            .to_cohort
            .get(&(p.id, p.serial))
            .cloned()
    }

    fn scope_of_pid(&self, p: &ErlPid) -> Option<usize> {
        self.scopes.iter().position(|s| &s.pid == p)
    }

    /// A term for a minted pid reaches its Cohort process from the agent
    /// (`Bridge::from_beam`), so a reader knows the bytes are a term.
    fn deliver_to_pid(&mut self, id: u64, to: &ErlPid, message: Term, agent: &cohort::Process) {
        if let Some(i) = self.scope_of_pid(to) {
            return self.scope_msg(id, i, message);
        }
        let Some(c) = self.cohort_pid(to) else {
            tracing::debug!("erlang bridge: message to an unknown pid dropped");
            return;
        };
        if let Some(bytes) = encode(&message) {
            agent.send(&c, bytes);
        }
    }

    fn deliver_to_name(&mut self, id: u64, from: &ErlPid, name: &str, message: Term) {
        if let Some(i) = self.scopes.iter().position(|s| s.atom.name == name) {
            return self.scope_msg(id, i, message);
        }
        match name {
            "global_name_server" => self.global(id, from, message),
            "net_kernel" => {
                // `{'$gen_call', {From, Tag}, {is_auth, Node}}` (net_adm:ping).
                if let Some((from, tag, req)) = gen_call(&message) {
                    if matches!(&req, Term::Tuple(t) if t.elements.first() == Some(&atom("is_auth")))
                    {
                        self.send_pid(&from, tuple(vec![tag, atom("yes")]));
                    }
                }
            }
            _ => tracing::debug!(
                name,
                "erlang bridge: message to an unregistered name dropped"
            ),
        }
    }

    /// `global`'s connection protocol, answered as a node holding no names:
    /// on `init_connect` say we are in sync, as `global`'s own `sync_other`
    /// does, so `global:sync/0` on the BEAM node does not wait for us.
    fn global(&mut self, id: u64, _from: &ErlPid, message: Term) {
        let Some(node) = self.conns.get(&id).map(|c| c.node.clone()) else {
            return;
        };
        let Term::Tuple(t) = &message else { return };
        let is_init = t.elements.len() == 2
            && t.elements[0] == atom("$gen_cast")
            && matches!(&t.elements[1], Term::Tuple(c) if c.elements.len() == 4 && c.elements[0] == atom("init_connect"));
        if is_init {
            let cast = tuple(vec![
                atom("$gen_cast"),
                tuple(vec![atom("in_sync"), self.me.clone().into(), atom("true")]),
            ]);
            let sys = self.sys_pid.clone();
            self.send_to(
                &node,
                Message::reg_send(sys, Atom::from("global_name_server"), cast),
            );
        } else {
            tracing::debug!(peer = %node, "erlang bridge: global message ignored");
        }
    }

    fn monitor_p(
        &mut self,
        from: ErlPid,
        to: PidOrAtom,
        reference: Reference,
        agent: &cohort::Process,
    ) {
        let _ = agent;
        tracing::debug!(?to, "erlang bridge: monitor request");
        let node = from.node.name.clone();
        match &to {
            PidOrAtom::Pid(p) if self.scope_of_pid(p).is_some() || p == &self.sys_pid => {
                // Our scope processes live as long as the bridge.
            }
            PidOrAtom::Atom(a)
                if self.scopes.iter().any(|s| s.atom == *a)
                    || a.name == "global_name_server"
                    || a.name == "net_kernel" => {}
            PidOrAtom::Pid(p) => match self.cohort_pid(p) {
                Some(c) => self
                    .beam_monitors
                    .entry(c)
                    .or_default()
                    .push((from, reference)),
                None => {
                    let m = Message::monitor_p_exit(to.clone(), from, reference, atom("noproc"));
                    self.send_to(&node, m);
                }
            },
            PidOrAtom::Atom(_) => {
                let m = Message::monitor_p_exit(to.clone(), from, reference, atom("noproc"));
                self.send_to(&node, m);
            }
        }
    }

    /// A monitor we hold fired: a BEAM scope process ended.
    fn monitor_fired(&mut self, reference: &Reference) {
        for i in 0..self.scopes.len() {
            let peer = self.scopes[i]
                .remote
                .iter()
                .find(|(_, r)| &r.mref == reference)
                .map(|(p, _)| p.clone());
            if let Some(peer) = peer {
                self.drop_peer(i, &peer);
            }
        }
    }

    fn advertised(&self, pid: &Pid) -> bool {
        self.scopes
            .iter()
            .any(|s| s.local.values().any(|l| l.contains(pid)))
    }

    fn unmint(&mut self, pid: &Pid) {
        let mut t = self.tables.lock().unwrap();
        if let Some(e) = t.to_erl.remove(pid) {
            t.to_cohort.remove(&(e.id, e.serial));
        }
    }

    /// A Cohort process we minted a pid for ended. Its pid stays minted
    /// until its pg leaves (which may come after this) are passed on.
    pub(crate) fn cohort_down(&mut self, pid: &Pid, reason: &ExitReason) {
        self.agent_monitors.remove(pid);
        let erl = self.tables.lock().unwrap().to_erl.get(pid).cloned();
        if self.advertised(pid) {
            self.dead.insert(pid.clone());
        } else {
            self.unmint(pid);
        }
        let Some(erl) = erl else { return };
        tracing::debug!(
            ?erl,
            monitors = self.beam_monitors.get(pid).map_or(0, |v| v.len()),
            "erlang bridge: minted process ended"
        );
        for (from, r) in self.beam_monitors.remove(pid).unwrap_or_default() {
            let node = from.node.name.clone();
            let m =
                Message::monitor_p_exit(PidOrAtom::Pid(erl.clone()), from, r, exit_term(reason));
            self.send_to(&node, m);
        }
    }

    /// A message for bridged scope `i` (to its registered name or its pid):
    /// the messages of OTP 25's `pg` scope process.
    fn scope_msg(&mut self, id: u64, i: usize, message: Term) {
        let Term::Tuple(t) = &message else {
            return self.odd(id, i);
        };
        let e = &t.elements;
        let tag = match e.first() {
            Some(Term::Atom(a)) => a.name.as_str(),
            _ => return self.odd(id, i),
        };
        match (tag, e.len()) {
            ("discover", 2) => {
                let Term::Pid(peer) = &e[1] else {
                    return self.odd(id, i);
                };
                let sync = tuple(vec![atom("$gen_cast"), self.sync_term(i)]);
                self.send_pid(peer, sync);
                if !self.scopes[i].remote.contains_key(peer) {
                    self.add_peer(i, peer);
                    let d = tuple(vec![atom("discover"), self.scopes[i].pid.clone().into()]);
                    self.send_pid(peer, d);
                }
            }
            ("$gen_cast", 2) => {
                let Term::Tuple(c) = &e[1] else {
                    return self.odd(id, i);
                };
                let c = &c.elements;
                if c.len() != 3 || c[0] != atom("sync") {
                    return self.odd(id, i);
                }
                let Term::Pid(peer) = &c[1] else {
                    return self.odd(id, i);
                };
                let Term::List(groups) = &c[2] else {
                    return self.odd(id, i);
                };
                let mut new: HashMap<String, Vec<ErlPid>> = HashMap::new();
                for g in &groups.elements {
                    let Term::Tuple(gt) = g else { continue };
                    if gt.elements.len() != 2 {
                        continue;
                    }
                    let (Term::Atom(name), Some(pids)) =
                        (&gt.elements[0], pid_or_pids(&gt.elements[1]))
                    else {
                        tracing::debug!("erlang bridge: a non-atom group is not bridged");
                        continue;
                    };
                    new.entry(name.name.clone()).or_default().extend(pids);
                }
                if !self.scopes[i].remote.contains_key(peer) {
                    self.add_peer(i, peer);
                }
                self.remote_sync(i, peer, new);
            }
            ("join", 4) => {
                let (Term::Pid(peer), Term::Atom(g), Some(pids)) =
                    (&e[1], &e[2], pid_or_pids(&e[3]))
                else {
                    return;
                };
                if let Some(r) = self.scopes[i].remote.get_mut(peer) {
                    r.groups
                        .entry(g.name.clone())
                        .or_default()
                        .extend(pids.iter().cloned());
                    self.remote_join(i, &g.name.clone(), &pids);
                }
            }
            ("leave", 4) => {
                let (Term::Pid(peer), Some(pids), Term::List(groups)) =
                    (&e[1], pid_or_pids(&e[2]), &e[3])
                else {
                    return;
                };
                if !self.scopes[i].remote.contains_key(peer) {
                    return;
                }
                for g in &groups.elements {
                    let Term::Atom(g) = g else { continue };
                    let r = self.scopes[i].remote.get_mut(peer).expect("checked");
                    let mut left = Vec::new();
                    if let Some(list) = r.groups.get_mut(&g.name) {
                        for p in &pids {
                            if let Some(at) = list.iter().position(|x| x == p) {
                                list.remove(at);
                                left.push(p.clone());
                            }
                        }
                        if list.is_empty() {
                            r.groups.remove(&g.name);
                        }
                    }
                    self.remote_leave(i, &g.name.clone(), &left);
                }
            }
            _ => self.odd(id, i),
        }
    }

    fn add_peer(&mut self, i: usize, peer: &ErlPid) {
        let mref = self.fresh_ref();
        let from = self.scopes[i].pid.clone();
        let node = peer.node.name.clone();
        self.scopes[i].remote.insert(
            peer.clone(),
            Remote {
                mref: mref.clone(),
                groups: HashMap::new(),
            },
        );
        self.send_to(
            &node,
            Message::monitor_p(from, PidOrAtom::Pid(peer.clone()), mref),
        );
    }

    fn odd(&self, id: u64, i: usize) {
        let node = self.conns.get(&id).map(|c| c.node.as_str()).unwrap_or("?");
        tracing::warn!(peer = %node, scope = %self.scopes[i].atom.name, "erlang bridge: unexpected message to a scope process ignored");
    }
}

/// `{'$gen_call', {From, Tag}, Request}`.
fn gen_call(t: &Term) -> Option<(ErlPid, Term, Term)> {
    let Term::Tuple(t) = t else { return None };
    if t.elements.len() != 3 || t.elements[0] != atom("$gen_call") {
        return None;
    }
    let Term::Tuple(f) = &t.elements[1] else {
        return None;
    };
    match (f.elements.first(), f.elements.get(1)) {
        (Some(Term::Pid(p)), Some(tag)) if f.elements.len() == 2 => {
            Some((p.clone(), tag.clone(), t.elements[2].clone()))
        }
        _ => None,
    }
}

/// (in `after` but not in `before`, in `before` but not in `after`), counting duplicates.
fn multiset_diff(before: &[ErlPid], after: &[ErlPid]) -> (Vec<ErlPid>, Vec<ErlPid>) {
    let mut left: Vec<ErlPid> = before.to_vec();
    let mut joined = Vec::new();
    for p in after {
        if let Some(at) = left.iter().position(|x| x == p) {
            left.swap_remove(at);
        } else {
            joined.push(p.clone());
        }
    }
    (joined, left)
}

/// Runs the bridge until the event channel closes.
pub(crate) async fn run(
    mut state: State,
    mut events: mpsc::Receiver<Event>,
    mut agent: cohort::Process,
    snapshots: Vec<Vec<(cohort::Group, Vec<Pid>)>>,
) {
    for (i, snap) in snapshots.into_iter().enumerate() {
        state.seed(i, snap, &agent);
    }
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => state.handle(ev, &agent),
                None => return,
            },
            m = agent.recv() => match m {
                Some(CMessage::Down { pid, reason, .. }) => state.cohort_down(&pid, &reason),
                Some(_) => {}
                None => return,
            },
        }
    }
}
