//! Node discovery from outside: real `cohort node` processes find each
//! other through a real DNS server (dnsmasq, started here on a free loopback
//! port; `.ci/run` installs it) or a seeds file. The DNS records change
//! during the tests: nodes are added, removed, and the server fails (SERVFAIL,
//! no answer) or answers nothing. The only hand-made DNS piece is the broken
//! upstream behind dnsmasq that answers SERVFAIL.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use serde_json::Value;

const COOKIE: &str = "discovery-test-cookie";
const SRV: &str = "_cohort._tcp.cohort.test";

/// A dnsmasq serving `cohort.test` from a hosts file and SRV records.
struct Dns {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// Ends the broken upstream's thread.
    upstream_stop: Arc<AtomicBool>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop();
        self.upstream_stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free for TCP and UDP on every one of `ips`, below Linux's
/// ephemeral range (32768–60999): a port picked by binding port 0 is
/// ephemeral, and any other program's outgoing connection may take it
/// before the node (or dnsmasq, which listens on both) binds it (seen in
/// CI while other nodes ran); one outside that range is only taken by a
/// program binding it by number.
fn shared_free_port(ips: &[&str]) -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
    for i in 0..1000u64 {
        let port = 20_000 + ((seed.wrapping_mul(2_654_435_761) + i * 7_919) % 12_000) as u16;
        let held: Vec<_> = ips
            .iter()
            .map_while(|ip| {
                let tcp = std::net::TcpListener::bind((*ip, port)).ok()?;
                let udp = std::net::UdpSocket::bind((*ip, port)).ok()?;
                Some((tcp, udp))
            })
            .collect();
        if held.len() == ips.len() {
            return port;
        }
    }
    panic!("no port free on {ips:?} in 20000..32000");
}

/// What dnsmasq answers for `cohort.test`.
enum Zone<'a> {
    /// The hosts file and these SRV records (target, port).
    Records(&'a [(&'a str, u16)]),
    /// Forwards `cohort.test` to a broken upstream that answers every
    /// query with SERVFAIL, which dnsmasq relays.
    Servfail,
}

impl Dns {
    fn new(hosts: &str) -> Dns {
        let dir = tmp("dns");
        std::fs::create_dir_all(&dir).unwrap();
        let d = Dns {
            child: None,
            port: shared_free_port(&["127.0.0.1"]),
            dir,
            upstream_stop: Arc::new(AtomicBool::new(false)),
        };
        d.hosts(hosts);
        d
    }

    fn resolver(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn hosts(&self, text: &str) {
        // Written aside and renamed: dnsmasq never reads half a file.
        let tmp = self.dir.join("hosts.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.dir.join("hosts")).unwrap();
    }

    /// Starts (or restarts, on the same port) the server answering `zone`.
    fn serve(&mut self, zone: Zone) {
        self.stop();
        let mut cmd = Command::new(dnsmasq());
        cmd.args([
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--log-facility=-",
            &format!("--port={}", self.port),
        ]);
        match zone {
            Zone::Records(srv) => {
                cmd.arg(format!("--addn-hosts={}", self.dir.join("hosts").display()));
                cmd.arg("--local=/cohort.test/");
                for (target, port) in srv {
                    cmd.arg(format!("--srv-host={SRV},{target},{port}"));
                }
            }
            Zone::Servfail => {
                let up = self.broken_upstream();
                cmd.arg(format!("--server=/cohort.test/127.0.0.1#{up}"));
            }
        }
        let log = std::fs::File::create(self.dir.join("dnsmasq.log")).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dnsmasq starts (apt-get install dnsmasq-base)");
        self.child = Some(child);
        let port = self.port;
        let log = self.dir.join("dnsmasq.log");
        let child = self.child.as_mut().expect("started");
        wait_for("dnsmasq to listen", || {
            if let Ok(Some(status)) = child.try_wait() {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("dnsmasq exited ({status}) on port {port}: {said}");
            }
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()
        });
    }

    /// A UDP socket that answers every DNS query with SERVFAIL (the header
    /// turned into a response with RCODE 2); returns its port.
    fn broken_upstream(&self) -> u16 {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let stop = self.upstream_stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if n >= 12 {
                        buf[2] |= 0x80;
                        buf[3] = (buf[3] & 0xf0) | 2;
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
            }
        });
        port
    }

    /// Makes dnsmasq read its hosts file again.
    fn reload(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "SIGHUP to dnsmasq");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn dnsmasq() -> PathBuf {
    for p in [
        "/usr/sbin/dnsmasq",
        "/sbin/dnsmasq",
        "/usr/local/sbin/dnsmasq",
    ] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    PathBuf::from("dnsmasq")
}

fn port_of(d: &Daemon) -> u16 {
    d.listen.rsplit_once(':').unwrap().1.parse().unwrap()
}

fn nodes(d: &Daemon) -> Vec<String> {
    strings(&ctl_json(d, &["nodes"]), "nodes")
}

/// The node's first (only) discovery strategy, from `ctl info`.
fn strategy(d: &Daemon) -> Value {
    let v = ctl_json(d, &["info"]);
    v["discovery"][0].clone()
}

fn redialing(d: &Daemon) -> Vec<String> {
    strings(&ctl_json(d, &["info"]), "redialing")
}

/// The discovered entry of `addr`, if the strategy still knows it.
fn entry(s: &Value, addr: &str) -> Option<Value> {
    s["discovered"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["addr"] == addr)
        .cloned()
}

fn count(s: &Value, key: &str) -> u64 {
    s[key].as_u64().unwrap_or_else(|| panic!("{key} in {s}"))
}

fn srv_node(name: &str, dns: &Dns) -> Daemon {
    daemon_logging(
        name,
        &[],
        COOKIE,
        &[
            "--discover",
            &format!("srv:{SRV}"),
            "--resolver",
            &dns.resolver(),
            "--discover-interval-ms",
            "200",
            "--discover-forget-ms",
            "1000",
        ],
        "info",
    )
}

#[test]
fn srv_records_mesh_three_nodes_failures_change_nothing_and_gone_nodes_are_forgotten() {
    let mut dns = Dns::new("127.0.0.1 a.cohort.test b.cohort.test c.cohort.test\n");
    let a = srv_node("a@127.0.0.1", &dns);
    let b = srv_node("b@127.0.0.1", &dns);
    let c = srv_node("c@127.0.0.1", &dns);
    let all = [&a, &b, &c];
    // Started after the nodes: they know each other's ports only now.
    let records = [
        ("a.cohort.test", port_of(&a)),
        ("b.cohort.test", port_of(&b)),
        ("c.cohort.test", port_of(&c)),
    ];
    dns.serve(Zone::Records(&records));

    // The three mesh from discovery alone (no --connect), each strategy
    // having reached both others itself, and none dialing its own address.
    for d in all {
        let others: Vec<&&Daemon> = all.iter().filter(|o| o.name != d.name).collect();
        wait_for(&format!("{} to discover both others", d.name), || {
            let s = strategy(d);
            others.iter().all(|o| {
                entry(&s, &o.listen).is_some_and(|e| e["connected"] == true && e["node"] == o.name)
            })
        });
        let s = strategy(d);
        assert!(entry(&s, &d.listen).is_none(), "own address dialed: {s}");
        assert_eq!(s["last_result"].as_array().unwrap().len(), 2, "{s}");
        assert_eq!(s["strategy"], format!("srv:{SRV}"));
    }
    for d in all {
        let log = std::fs::read_to_string(&d.log).unwrap();
        assert!(
            !log.contains("our own name"),
            "{} dialed itself: {log}",
            d.name
        );
        assert!(
            log.contains("discovery: the set of addresses changed"),
            "no log line for the change: {log}"
        );
    }

    // The resolver fails (SERVFAIL) and c dies: a
    // failing lookup forgets nothing and disconnects nobody, for longer than
    // the forget time.
    dns.serve(Zone::Servfail);
    let before = count(&strategy(&a), "errors");
    drop(c);
    let killed = Instant::now();
    wait_for("a to see c down", || nodes(&a) == [b.name.as_str()]);
    wait_for("failed lookups past the forget time", || {
        let s = strategy(&a);
        count(&s, "errors") >= before + 3
            && s["last_error"].is_string()
            && killed.elapsed().as_millis() > 2000
    });
    let s = strategy(&a);
    let error = s["last_error"].as_str().unwrap();
    assert!(
        error.contains(SRV) && !error.contains("timed out"),
        "{error}"
    );
    assert_eq!(redialing(&a), ["c@127.0.0.1"], "c was forgotten: {s}");
    let c_addr = format!("127.0.0.1:{}", records[2].1);
    let ec = entry(&s, &c_addr).unwrap_or_else(|| panic!("c's entry went: {s}"));
    assert_eq!(ec["listed"], true, "a failed lookup counted c as gone: {s}");
    assert_eq!(count(&s, "forgotten"), 0);
    assert_eq!(nodes(&a), [b.name.as_str()]);
    assert_eq!(nodes(&b), [a.name.as_str()]);
    let info = ctl(&a, &["info"]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains(&format!("discovery srv:{SRV}: error: ")),
        "ctl info: {text}"
    );

    // The server stops (lookups time out): still nothing changes.
    dns.stop();
    let before = count(&strategy(&a), "errors");
    wait_for("lookups to time out", || {
        let s = strategy(&a);
        count(&s, "errors") >= before + 2
            && s["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("timed out"))
    });
    assert_eq!(redialing(&a), ["c@127.0.0.1"]);
    assert_eq!(nodes(&a), [b.name.as_str()]);
    assert_eq!(nodes(&b), [a.name.as_str()]);

    // The server answers nothing (NXDOMAIN): an empty result changes
    // nothing either.
    dns.serve(Zone::Records(&[]));
    let before = count(&strategy(&a), "lookups");
    wait_for("empty answers", || {
        let s = strategy(&a);
        count(&s, "lookups") >= before + 3
            && s["last_error"].is_null()
            && s["last_result"].as_array().unwrap().is_empty()
    });
    let s = strategy(&a);
    assert_eq!(entry(&s, &c_addr).unwrap()["listed"], true, "{s}");
    assert_eq!(redialing(&a), ["c@127.0.0.1"]);
    assert_eq!(nodes(&a), [b.name.as_str()]);

    // Only a is listed now: c (gone, unreachable) is forgotten by a and b
    // after the forget time; b, missing from the results as long but
    // connected, stays.
    dns.serve(Zone::Records(&records[..1]));
    for (d, other) in [(&a, &b), (&b, &a)] {
        wait_for(&format!("{} to forget c", d.name), || {
            let s = strategy(d);
            redialing(d).is_empty() && entry(&s, &c_addr).is_none() && count(&s, "forgotten") == 1
        });
        assert_eq!(nodes(d), [other.name.as_str()]);
        let log = std::fs::read_to_string(&d.log).unwrap();
        assert!(log.contains("discovery: forgot a node"), "{log}");
    }
    let s = strategy(&a);
    let eb = entry(&s, &b.listen).unwrap_or_else(|| panic!("b was dropped: {s}"));
    assert_eq!(eb["listed"], false, "{s}");
    assert_eq!(eb["connected"], true, "{s}");

    let metrics = http(&a.admin, "GET", "/metrics", None).1;
    let label = format!("{{strategy=\"srv:{SRV}\"}}");
    for m in [
        "cohort_discovery_lookups_total",
        "cohort_discovery_errors_total",
        "cohort_discovery_nodes",
        "cohort_discovery_forgotten_total",
    ] {
        assert!(metrics.contains(&format!("{m}{label}")), "{m}: {metrics}");
    }
    assert!(
        metrics.contains(&format!("cohort_discovery_forgotten_total{label} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("cohort_discovery_nodes{label} 1")),
        "{metrics}"
    );
}

#[test]
fn dns_a_records_at_the_own_port_and_a_record_added_on_reload() {
    // Three loopback addresses, one port: `dns:HOST` without a port dials
    // each address at the node's own listen port.
    let port = shared_free_port(&["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    let mut dns = Dns::new("127.0.0.1 nodes.cohort.test\n127.0.0.2 nodes.cohort.test\n");
    dns.serve(Zone::Records(&[]));
    let args = |ip: &str| {
        vec![
            "--listen".to_string(),
            format!("{ip}:{port}"),
            "--discover".into(),
            "dns:nodes.cohort.test".into(),
            "--resolver".into(),
            dns.resolver(),
            "--discover-interval-ms".into(),
            "200".into(),
        ]
    };
    let start = |name: &str, extra: Vec<String>| {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        daemon_logging(name, &[], COOKIE, &extra, "info")
    };
    let a = start("a@127.0.0.1", args("127.0.0.1"));
    let b = start("b@127.0.0.2", args("127.0.0.2"));
    // c does no discovery: only the others' lookups can find it.
    let c = start(
        "c@127.0.0.3",
        vec!["--listen".into(), format!("127.0.0.3:{port}")],
    );
    assert_eq!(a.listen, format!("127.0.0.1:{port}"));
    wait_for("a and b to mesh", || {
        nodes(&a) == [b.name.as_str()] && nodes(&b) == [a.name.as_str()]
    });
    let s = strategy(&a);
    assert_eq!(s["last_result"], serde_json::json!([b.listen]), "{s}");
    assert!(nodes(&c).is_empty());

    dns.hosts(
        "127.0.0.1 nodes.cohort.test\n127.0.0.2 nodes.cohort.test\n127.0.0.3 nodes.cohort.test\n",
    );
    dns.reload();
    wait_for("a to discover c", || {
        entry(&strategy(&a), &c.listen).is_some_and(|e| e["connected"] == true)
    });
    wait_for("all three to mesh", || nodes(&c).len() == 2);
    let log = std::fs::read_to_string(&a.log).unwrap();
    assert!(
        log.contains("discovery: the set of addresses changed"),
        "{log}"
    );
}

#[test]
fn a_seeds_file_from_the_config_is_read_again_when_it_changes() {
    let seeds = tmp("seeds");
    std::fs::write(&seeds, "# one HOST:PORT a line\n").unwrap();
    let cfg = config_file(&format!(
        "[[discovery]]\nfile = {:?}\ninterval_ms = 200\n",
        seeds.display().to_string()
    ));
    let b = daemon_with("b@127.0.0.1", &[], COOKIE, &[]);
    let a = daemon_logging(
        "a@127.0.0.1",
        &[],
        COOKIE,
        &["--config", cfg.to_str().unwrap()],
        "info",
    );
    wait_for("a few lookups", || count(&strategy(&a), "lookups") >= 3);
    assert!(nodes(&a).is_empty());
    let s = strategy(&a);
    assert_eq!(s["strategy"], format!("file:{}", seeds.display()));

    // A bad line refuses the whole file, says which line, changes nothing.
    std::fs::write(&seeds, format!("# seeds\n{}\nnot-an-address\n", b.listen)).unwrap();
    wait_for("the bad line to be reported", || {
        strategy(&a)["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("line 3") && e.contains("not-an-address"))
    });
    assert!(nodes(&a).is_empty());

    // Fixed: the added line is picked up without a restart.
    std::fs::write(&seeds, format!("# seeds\n{}  # b\n", b.listen)).unwrap();
    wait_for("a to connect to b", || nodes(&a) == [b.name.as_str()]);
    let s = strategy(&a);
    assert!(s["last_error"].is_null(), "{s}");
    assert_eq!(s["last_result"], serde_json::json!([b.listen]));
    let _ = std::fs::remove_file(&seeds);
    let _ = std::fs::remove_file(&cfg);
}

#[test]
fn bad_discovery_settings_are_refused_at_start_with_one_line() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--discover", "dns:"],
            "--discover: \"dns:\" is not a discovery strategy",
        ),
        (&["--discover", "ldap:x"], "is not a discovery strategy"),
        (
            &["--discover", "srv:x", "--resolver", "localhost"],
            "--resolver: \"localhost\" is not IP:PORT",
        ),
        (
            &["--discover", "srv:x", "--discover-interval-ms", "0"],
            "--discover-interval-ms: must be at least 1",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(BIN)
            .args([
                "node",
                "--name",
                "a@127.0.0.1",
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "none",
            ])
            .args(args)
            .env("COHORT_COOKIE", COOKIE)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}
