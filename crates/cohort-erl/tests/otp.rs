//! The bridge against real Erlang/OTP nodes (`erl`, `epmd`, `erl_call`).

mod common;

use cohort::Message;
use cohort_erl::{Bridge, Term};
use common::*;

/// `[P || P <- pg:get_members(Scope, Group), node(P) =:= Node]` has `n` pids.
fn cohort_members_on_beam(scope: &str, group: &str, node: &str) -> String {
    format!("length([P || P <- pg:get_members({scope}, {group}), node(P) =:= '{node}']).")
}

async fn recv_term(p: &mut cohort::Process) -> Term {
    let m = tokio::time::timeout(DEADLINE, p.recv())
        .await
        .expect("no message within the deadline")
        .expect("mailbox closed");
    match m {
        Message::Data { payload, .. } => cohort_erl::decode_term(&payload).unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_messages_exit_leave_and_global() {
    init_logs();
    ensure_epmd();
    let b = Beam::start(&unique("beam"), "pg:start(demo).");
    let node = cohort_node().await;
    let me = format!("{}@127.0.0.1", unique("cohort"));
    let bridge = Bridge::start(&node, config(&me).peer(&b.name).scope("demo"))
        .await
        .unwrap();

    // A visible node of the BEAM cluster.
    b.wait_for(&format!("lists:member('{me}', nodes())."), "true");

    // Cohort -> BEAM: a Cohort process joins; BEAM's pg lists its minted pid.
    let mut cp = node.spawn();
    node.scope("demo").join("workers", cp.pid()).unwrap();
    b.wait_for(&cohort_members_on_beam("demo", "workers", &me), "1");
    assert!(bridge.erlang_pid(cp.pid()).is_some());

    // BEAM -> Cohort: a BEAM process (an inbox collecting what it gets) joins.
    b.eval(
        "P = spawn(fun() -> L = fun Loop(Acc) -> receive {get, F} -> F ! {msgs, lists:reverse(Acc)}, Loop(Acc); \
         M -> Loop([M | Acc]) end end, L([]) end), register(inbox, P), pg:join(demo, workers, P).",
    );
    let scope = node.scope("demo");
    until("the BEAM member in Cohort", || {
        scope.members("workers").len() == 2
    })
    .await;
    let proxy = scope
        .members("workers")
        .pids()
        .find(|p| p != cp.pid())
        .unwrap();
    let inbox = bridge.beam_pid(&proxy).expect("a proxy for the BEAM pid");
    assert_eq!(inbox.node.name, b.name);

    // Messages both ways: bytes arrive as a binary; a term as its external format.
    cp.send(&proxy, &b"hello beam"[..]);
    b.wait_for(
        "inbox ! {get, self()}, receive {msgs, Ms} -> Ms =:= [<<\"hello beam\">>] end.",
        "true",
    );
    b.eval(&format!(
        "[P ! {{hello, 42, self()}} || P <- pg:get_members(demo, workers), node(P) =:= '{me}'], ok."
    ));
    let Term::Tuple(t) = recv_term(&mut cp).await else {
        panic!("not a tuple")
    };
    assert_eq!(t.elements[0], Term::from(eetf::Atom::from("hello")));
    assert_eq!(t.elements[1], Term::from(eetf::FixInteger::from(42)));
    // The library can answer any term to a BEAM pid.
    bridge
        .send(&inbox, Term::from(eetf::Atom::from("from_rust")))
        .await;
    b.wait_for(
        "inbox ! {get, self()}, receive {msgs, Ms} -> lists:last(Ms) end.",
        "from_rust",
    );

    // global keeps working while the Cohort node is connected.
    let sync = "Self = self(), spawn(fun() -> Self ! {done, global:sync()} end), \
                receive {done, R} -> R after 5000 -> hung end.";
    assert_eq!(b.eval(sync), "ok");
    assert_eq!(
        b.eval("global:register_name(cohort_erl_test, whereis(inbox))."),
        "yes"
    );
    assert_eq!(b.eval(&format!("net_adm:ping('{me}').")), "pong");

    // A BEAM monitor on a minted pid fires when the Cohort process ends.
    b.eval(&format!(
        "[Cp] = [P || P <- pg:get_members(demo, workers), node(P) =:= '{me}'], \
         W = spawn(fun() -> R = erlang:monitor(process, Cp), L = fun Loop(S) -> receive \
         {{'DOWN', R, process, _, Why}} -> Loop(Why); {{get, F}} -> F ! {{w, S}}, Loop(S) end end, \
         L(none) end), register(watcher, W), ok."
    ));

    // Leave, both ways.
    node.scope("demo").leave("workers", cp.pid()).unwrap();
    b.wait_for(&cohort_members_on_beam("demo", "workers", &me), "0");
    b.eval("pg:leave(demo, workers, whereis(inbox)).");
    until("the BEAM member leaves Cohort", || {
        scope.members("workers").is_empty()
    })
    .await;
    // The proxy ends right after its last leave (a moment after the members
    // read empty).
    until("the proxy ends", || bridge.beam_pid(&proxy).is_none()).await;

    // Exit, both ways.
    node.scope("demo").join("workers", cp.pid()).unwrap();
    b.eval("pg:join(demo, workers, whereis(inbox)), pg:join(demo, workers, whereis(inbox)).");
    b.wait_for(&cohort_members_on_beam("demo", "workers", &me), "1");
    until("BEAM joins (twice) in Cohort", || {
        scope.members("workers").len() == 3
    })
    .await;
    drop(cp);
    b.wait_for(&cohort_members_on_beam("demo", "workers", &me), "0");
    b.wait_for(
        "watcher ! {get, self()}, receive {w, S} -> S end.",
        "normal",
    );
    b.eval("exit(whereis(inbox), kill), ok.");
    until("the killed BEAM process leaves Cohort", || {
        scope.members("workers").is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_down_both_ways_restart_and_a_node_without_the_scope() {
    init_logs();
    ensure_epmd();
    let short = unique("beam");
    let member = "pg:start(demo), P = spawn(fun() -> receive stop -> ok end end), \
                  register(m, P), pg:join(demo, g, P).";
    let b = Beam::start(&short, member);
    let plain = Beam::start(&unique("plain"), "ok."); // runs no `demo` scope
    let node = cohort_node().await;
    let me = format!("{}@127.0.0.1", unique("cohort"));
    let bridge = Bridge::start(
        &node,
        config(&me).peer(&b.name).peer(&plain.name).scope("demo"),
    )
    .await
    .unwrap();
    let scope = node.scope("demo");
    until("the BEAM member in Cohort", || {
        scope.members("g").len() == 1
    })
    .await;
    let cp = node.spawn();
    scope.join("g", cp.pid()).unwrap();
    b.wait_for(&cohort_members_on_beam("demo", "g", &me), "1");
    // The node without the scope is connected, sees us, and nothing crashed it.
    plain.wait_for(&format!("lists:member('{me}', nodes())."), "true");
    assert_eq!(plain.eval("whereis(demo)."), "undefined");
    assert!(bridge.nodes().contains(&plain.name));

    // BEAM node down: its members vanish from Cohort.
    b.kill();
    until("the dead node's member leaves Cohort", || {
        scope.members("g").len() == 1 && scope.members("g").count(cp.pid()) == 1
    })
    .await;

    // BEAM restart (same name): redialed, members back both ways.
    let b = Beam::start(&short, member);
    until("the restarted node's member in Cohort", || {
        scope.members("g").len() == 2
    })
    .await;
    b.wait_for(&cohort_members_on_beam("demo", "g", &me), "1");

    // Cohort node down as BEAM sees it: its entries vanish there.
    drop(bridge);
    b.wait_for(&format!("lists:member('{me}', nodes())."), "false");
    b.wait_for(&cohort_members_on_beam("demo", "g", &me), "0");
    assert_eq!(b.eval("length(pg:get_members(demo, g))."), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_closes_only_that_connection() {
    use erl_dist::handshake::ClientSideHandshake;
    use erl_dist::node::{Creation, LocalNode};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::compat::TokioAsyncReadCompatExt;

    init_logs();
    ensure_epmd();
    let b = Beam::start(&unique("beam"), "pg:start(demo).");
    let node = cohort_node().await;
    let me = format!("{}@127.0.0.1", unique("cohort"));
    let bridge = Bridge::start(&node, config(&me).peer(&b.name).scope("demo"))
        .await
        .unwrap();
    b.wait_for(&format!("lists:member('{me}', nodes())."), "true");
    let addr = format!("127.0.0.1:{}", bridge.port());

    // Garbage instead of a handshake.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0xff; 64]).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "the bridge closes a bad handshake"
    );

    // A real handshake, then frames a naive decoder would choke on.
    for frame in [
        // a list announcing 2^32-1 elements
        vec![112, 131, 108, 255, 255, 255, 255, 106],
        // 100 000 nested tuples
        {
            let mut v = vec![112, 131];
            v.extend(std::iter::repeat_n([104u8, 1], 100_000).flatten());
            v.push(106);
            v
        },
        // a frame larger than max_frame
        vec![112; 9 << 20],
    ] {
        let s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let local = LocalNode::new(
            format!("{}@127.0.0.1", unique("evil")).parse().unwrap(),
            Creation::random(),
        );
        let mut hs = ClientSideHandshake::new(s.compat(), local, COOKIE);
        hs.execute_send_name(6).await.unwrap();
        let (s, _) = hs.execute_rest(true).await.unwrap();
        let mut s = s.into_inner();
        let mut out = (frame.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&frame);
        let _ = s.write_all(&out).await;
        let closed = tokio::time::timeout(DEADLINE, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "the bridge closes a connection sending a bad frame"
        );
    }

    // The real BEAM node is still served.
    let cp = node.spawn();
    node.scope("demo").join("later", cp.pid()).unwrap();
    b.wait_for(&cohort_members_on_beam("demo", "later", &me), "1");

    // A member on another node of the Cohort cluster is advertised too.
    let other = cohort_node().await;
    other.connect(&node.local_addr()).await.unwrap();
    let op = other.spawn();
    other.scope("demo").join("later", op.pid()).unwrap();
    b.wait_for(&cohort_members_on_beam("demo", "later", &me), "2");
    drop(op);
    b.wait_for(&cohort_members_on_beam("demo", "later", &me), "1");
}
