//! Helpers of the black-box tests: `cohort node` processes on loopback,
//! `cohort ctl`, `ctl hold`, raw HTTP, and a busy CPU.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_cohort");
pub const DEADLINE: Duration = Duration::from_secs(20);
/// The admin token of the test nodes (COHORT_ADMIN_TOKEN).
pub const TOKEN: &str = "cli-test-admin-token";

/// One running `cohort node`.
pub struct Daemon {
    pub child: Child,
    pub name: String,
    pub listen: String,
    pub admin: String,
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A file path unique to this test process and call (tests run in parallel).
pub fn tmp(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("cohort-cli-test-{}-{n}-{name}", std::process::id()))
}

/// Starts a node and waits for its "listening" line.
pub fn daemon_with(name: &str, seeds: &[&str], cookie: &str, extra: &[&str]) -> Daemon {
    daemon_logging(name, seeds, cookie, extra, "warn")
}

/// A node logging at `level` (COHORT_LOG) into its log file.
pub fn daemon_logging(
    name: &str,
    seeds: &[&str],
    cookie: &str,
    extra: &[&str],
    level: &str,
) -> Daemon {
    daemon_cmd(name, seeds, cookie, extra, level, |_| {})
}

/// A node whose command `adjust` can change last (its environment, say);
/// `--admin 127.0.0.1:0` and `--listen 127.0.0.1:0` come unless `extra`
/// gives its own.
pub fn daemon_cmd(
    name: &str,
    seeds: &[&str],
    cookie: &str,
    extra: &[&str],
    level: &str,
    adjust: impl FnOnce(&mut Command),
) -> Daemon {
    daemon_bin(BIN, name, seeds, cookie, extra, level, adjust)
}

/// A node run from the `cohort` binary at `bin` (a release build, say)
/// instead of this test build's.
pub fn daemon_bin(
    bin: &str,
    name: &str,
    seeds: &[&str],
    cookie: &str,
    extra: &[&str],
    level: &str,
    adjust: impl FnOnce(&mut Command),
) -> Daemon {
    let log = tmp(&format!("{name}.log"));
    let mut cmd = Command::new(bin);
    cmd.args(["node", "--name", name]);
    if !extra.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    if !extra.contains(&"--admin") {
        cmd.args(["--admin", "127.0.0.1:0"]);
    }
    cmd.args(extra)
        .env("COHORT_COOKIE", cookie)
        .env("COHORT_ADMIN_TOKEN", TOKEN)
        .env("COHORT_LOG", level)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    for s in seeds {
        cmd.args(["--connect", s]);
    }
    adjust(&mut cmd);
    let mut child = cmd.spawn().expect("cohort node starts");
    let line = first_line(child.stdout.take().unwrap());
    // "node NAME listening on ADDR admin http://ADDR creation N"
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words.first(),
        Some(&"node"),
        "unexpected first line {line:?}; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    Daemon {
        child,
        name: name.to_string(),
        listen: words[4].to_string(),
        admin: words[6].trim_start_matches("http://").to_string(),
        log,
    }
}

pub fn daemon(name: &str, seeds: &[&str]) -> Daemon {
    daemon_with(name, seeds, "cli-test-cookie", &[])
}

pub fn first_line(out: ChildStdout) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining so the node never blocks on a full pipe.
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    rx.recv_timeout(DEADLINE).expect("node printed its address")
}

/// `cohort ctl --admin ADMIN` with the test token in its environment.
pub fn ctl_cmd(d: &Daemon) -> Command {
    let mut c = Command::new(BIN);
    c.args(["ctl", "--admin", &d.admin])
        .env("COHORT_ADMIN_TOKEN", TOKEN);
    c
}

pub fn ctl(d: &Daemon, args: &[&str]) -> Output {
    ctl_cmd(d).args(args).output().expect("cohort ctl runs")
}

pub fn ctl_json(d: &Daemon, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = ctl(d, &a);
    assert!(
        out.status.success(),
        "ctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ctl --json prints JSON")
}

pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn strings(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// `cohort ctl hold`, with its stdout lines arriving on a channel.
pub struct Hold {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Hold {
    pub fn start(d: &Daemon, args: &[&str]) -> Hold {
        let mut child = ctl_cmd(d)
            .arg("hold")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Hold { child, lines }
    }

    pub fn line(&self) -> String {
        self.lines.recv_timeout(DEADLINE).expect("a line from hold")
    }

    /// Waits for `ready PID` and returns the pid.
    pub fn ready(&self) -> String {
        let l = self.line();
        l.strip_prefix("ready ")
            .unwrap_or_else(|| panic!("expected ready, got {l:?}"))
            .to_string()
    }

    pub fn exit_code(&mut self) -> i32 {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(t.elapsed() < DEADLINE, "hold did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn three() -> (Daemon, Daemon, Daemon) {
    let a = daemon("a@127.0.0.1", &[]);
    let b = daemon("b@127.0.0.1", &[&a.listen]);
    let c = daemon("c@127.0.0.1", &[&b.listen]);
    for d in [&a, &b, &c] {
        wait_for("full mesh", || {
            strings(&ctl_json(d, &["nodes"]), "nodes").len() == 2
        });
    }
    (a, b, c)
}

/// A raw HTTP/1.1 request with the test token and `Host: ADMIN`.
pub fn http(admin: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let auth = format!("Bearer {TOKEN}");
    http_with(
        admin,
        method,
        path,
        body,
        &[("Host", admin), ("Authorization", &auth)],
    )
}

/// A raw HTTP/1.1 request with exactly these headers (plus the body's
/// type and length) on a new TCP connection; status and whole answer.
pub fn http_with(
    admin: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    http_within(DEADLINE, admin, method, path, body, headers)
}

/// [`http_with`] waiting up to `limit` for the answer (a bulk load on a
/// machine running fifty nodes, say).
pub fn http_within(
    limit: Duration,
    admin: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(admin).unwrap();
    // A node that stops answering fails the test instead of hanging it.
    s.set_read_timeout(Some(limit)).unwrap();
    let body = body.unwrap_or("");
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(
        s,
        "{head}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("{method} {path}: no answer within {limit:?}: {e}"));
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, out)
}

/// Two threads spinning on the CPU until dropped (the machine has 2 cores).
pub struct Busy {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Busy {
    /// Starts `n` spinning threads.
    pub fn start(n: usize) -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Busy { stop, threads }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Writes a config file for a test node and returns its path.
pub fn config_file(text: &str) -> PathBuf {
    let p = tmp("config.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A program attached to a node over the WebSocket (`/attach`).
pub struct Ws {
    ws: tungstenite::WebSocket<std::net::TcpStream>,
    pub pid: String,
}

impl Ws {
    /// Attaches and reads the `ready` event.
    pub fn attach(d: &Daemon) -> Ws {
        let ws = Self::open(&d.admin, &[("Authorization", &format!("Bearer {TOKEN}"))])
            .expect("the node accepts the attach");
        let mut w = Ws {
            ws,
            pid: String::new(),
        };
        let ready = w.next();
        assert_eq!(ready["event"], "ready", "{ready}");
        w.pid = ready["pid"].as_str().unwrap().to_string();
        w
    }

    /// Opens `/attach` at `admin` with these extra headers; the node's
    /// refusal (an HTTP answer) as an error.
    pub fn open(
        admin: &str,
        headers: &[(&str, &str)],
    ) -> Result<tungstenite::WebSocket<std::net::TcpStream>, tungstenite::Error> {
        Self::open_at(admin, "/attach", headers)
    }

    /// Opens the WebSocket at `path` of `admin` with these extra headers.
    pub fn open_at(
        admin: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<tungstenite::WebSocket<std::net::TcpStream>, tungstenite::Error> {
        use tungstenite::client::IntoClientRequest;
        let stream = std::net::TcpStream::connect(admin).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut req = format!("ws://{admin}{path}").into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        tungstenite::client(req, stream)
            .map(|(ws, _)| ws)
            .map_err(|e| match e {
                tungstenite::HandshakeError::Failure(e) => e,
                tungstenite::HandshakeError::Interrupted(_) => panic!("blocking handshake"),
            })
    }

    /// The underlying connection (to stop reading, for example).
    pub fn socket(&mut self) -> &mut tungstenite::WebSocket<std::net::TcpStream> {
        &mut self.ws
    }

    /// The next event (fails the test after [`DEADLINE`]).
    pub fn next(&mut self) -> Value {
        loop {
            match self.ws.read().expect("an event from the node") {
                tungstenite::Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                tungstenite::Message::Close(_) => panic!("the node closed the attach connection"),
                _ => continue,
            }
        }
    }

    /// Sends a command and returns the next event (its reply).
    pub fn call(&mut self, cmd: Value) -> Value {
        self.ws
            .send(tungstenite::Message::Text(cmd.to_string().into()))
            .unwrap();
        self.next()
    }
}
