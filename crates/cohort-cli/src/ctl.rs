//! `cohort ctl`: drives a node through its admin API. Exit status 0 on
//! success, 1 on an error (with a message on stderr); `hold` exits 3 when
//! its process is killed for losing a name clash.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the admin API is.
enum Target {
    /// Plain HTTP on `HOST:PORT`.
    Tcp(String),
    /// HTTPS on `HOST:PORT`, checked against these roots.
    Tls(String, Arc<rustls::ClientConfig>),
    /// A Unix socket.
    Unix(PathBuf),
}

/// A stream to the admin API.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The admin client.
pub struct Ctl {
    target: Target,
    /// What `--admin` said (for messages).
    shown: String,
    token: String,
    json: bool,
    rt: tokio::runtime::Runtime,
}

fn encode(s: &str) -> String {
    // Percent-encode everything but unreserved characters.
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A TLS client configuration trusting the certificates in `ca` (PEM).
fn tls_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let ca = ca.ok_or_else(|| {
        anyhow!("an https:// admin API needs --admin-ca FILE (the PEM certificate that signed the node's --admin-tls-cert)")
    })?;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("--admin-ca {}: {e}", ca.display()))?;
    if certs.is_empty() {
        bail!("--admin-ca {}: no certificate in the file", ca.display());
    }
    for c in certs {
        roots
            .add(c)
            .map_err(|e| anyhow!("--admin-ca {}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

impl Ctl {
    /// A client for the admin API at `admin` (HOST:PORT, https://HOST:PORT
    /// or unix:PATH) with the token found as the node finds it.
    pub fn new(
        admin: &str,
        token_file: Option<&Path>,
        ca: Option<&Path>,
        json: bool,
    ) -> Result<Self> {
        let target = if let Some(p) = admin.strip_prefix("unix:") {
            Target::Unix(PathBuf::from(p))
        } else if let Some(a) = admin.strip_prefix("https://") {
            Target::Tls(a.to_string(), tls_config(ca)?)
        } else {
            Target::Tcp(admin.to_string())
        };
        let token = crate::token::for_client(token_file)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the client's runtime")?;
        Ok(Ctl {
            target,
            shown: admin.to_string(),
            token,
            json,
            rt,
        })
    }

    /// The `Host` the requests carry.
    fn host(&self) -> &str {
        match &self.target {
            Target::Tcp(a) | Target::Tls(a, _) => a,
            Target::Unix(_) => "localhost",
        }
    }

    /// Opens a stream to the admin API.
    async fn connect(&self) -> Result<Box<dyn Io>> {
        let fail = |e: std::io::Error| anyhow!("cannot reach the admin API at {}: {e}", self.shown);
        Ok(match &self.target {
            Target::Tcp(a) => Box::new(tokio::net::TcpStream::connect(a).await.map_err(fail)?),
            Target::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await.map_err(fail)?),
            Target::Tls(a, cfg) => {
                let tcp = tokio::net::TcpStream::connect(a).await.map_err(fail)?;
                let host = a
                    .rsplit_once(':')
                    .map_or(a.as_str(), |(h, _)| h)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| anyhow!("--admin {}: {e}", self.shown))?;
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| anyhow!("TLS with the admin API at {}: {e}", self.shown))?;
                Box::new(tls)
            }
        })
    }

    /// One request on its own connection: status and body.
    async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Bytes)> {
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| anyhow!("admin API at {}: {e}", self.shown))?;
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host())
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        let bytes = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| anyhow!("admin API at {}: {e}", self.shown))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| anyhow!("admin API at {}: {e}", self.shown))?
            .to_bytes();
        Ok((status, body))
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, bytes) = self
            .rt
            .block_on(async {
                tokio::time::timeout(TIMEOUT, self.request(method, path, body)).await
            })
            .map_err(|_| {
                anyhow!(
                    "the admin API at {} did not answer within {TIMEOUT:?}",
                    self.shown
                )
            })??;
        let v: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("admin API answered {status} without JSON"))?;
        if !(200..300).contains(&status) {
            bail!(
                "{}",
                v.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("request failed")
            );
        }
        Ok(v)
    }

    fn get(&self, path: &str) -> Result<Value> {
        self.call("GET", path, None)
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call("POST", path, Some(body))
    }

    fn print(&self, v: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            crate::out::out!("{v}");
        } else {
            let s = human(v);
            if !s.is_empty() {
                crate::out::out!("{s}");
            }
        }
    }

    /// One item a line, `(none)` for an empty list.
    fn list(v: &Value, key: &str) -> String {
        let items: Vec<&str> = v[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if items.is_empty() {
            "(none)".into()
        } else {
            items.join("\n")
        }
    }

    /// Items joined by ", ", `(none)` for an empty list.
    fn inline(v: &Value, key: &str) -> String {
        Self::list(v, key).replace('\n', ", ")
    }

    fn where_q(at: &Option<String>) -> String {
        at.as_ref()
            .map(|w| format!("?where={}", encode(w)))
            .unwrap_or_default()
    }

    /// `info`: the whole answer with `--json`.
    pub fn info(&self) -> Result<()> {
        let v = self.get("/info")?;
        self.print(&v, |v| {
            let groups: Vec<&str> = v["other_groups"]
                .as_array()
                .map(|gs| gs.iter().filter_map(|g| g["name"].as_str()).collect())
                .unwrap_or_default();
            format!(
                "node: {} (creation {})\nstate: {}\nown group: {}\nown group nodes: {}\nsynced: {}\nsync errors: {}\nno contact: {}\nother groups: {}\nmonitors: {}\nunreached: {}",
                v["node"].as_str().unwrap_or(""),
                v["creation"],
                v["state"].as_str().unwrap_or(""),
                v["own_group_name"].as_str().unwrap_or("-"),
                Self::inline(v, "own_group_nodes"),
                Self::inline(v, "synced_nodes"),
                Self::inline(v, "sync_error"),
                Self::inline(v, "no_contact"),
                if groups.is_empty() { "(none)".into() } else { groups.join(", ") },
                v["monitors"],
                Self::inline(v, "unreached"),
            ) + &Self::discovery_lines(v)
                + &match v.get("erlang") {
                    Some(e) if e.is_object() => format!(
                        "\nerlang node: {} (port {})\nerlang connected: {}\nerlang scopes: {}",
                        e["node"].as_str().unwrap_or(""),
                        e["port"],
                        Self::inline(e, "connected"),
                        Self::inline(e, "scopes"),
                    ),
                    _ => String::new(),
                }
        });
        Ok(())
    }

    /// The redialed nodes and one line per discovery strategy: its last
    /// result or error and its counters.
    fn discovery_lines(v: &Value) -> String {
        let mut out = format!("\nredialing: {}", Self::inline(v, "redialing"));
        for s in v["discovery"].as_array().into_iter().flatten() {
            let result = match s["last_error"].as_str() {
                Some(e) => format!("error: {e}"),
                None => {
                    let found: Vec<&str> = s["last_result"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                        .unwrap_or_default();
                    if found.is_empty() {
                        "found nothing".into()
                    } else {
                        format!("found {}", found.join(", "))
                    }
                }
            };
            out.push_str(&format!(
                "\ndiscovery {}: {result} ({} lookups, {} errors, {} forgotten)",
                s["strategy"].as_str().unwrap_or(""),
                s["lookups"],
                s["errors"],
                s["forgotten"],
            ));
        }
        out
    }

    /// `nodes [--hidden]`.
    pub fn nodes(&self, hidden: bool) -> Result<()> {
        let v = self.get(if hidden {
            "/nodes?hidden=true"
        } else {
            "/nodes"
        })?;
        self.print(&v, |v| Self::list(v, "nodes"));
        Ok(())
    }

    /// `names [--where ...]`.
    pub fn names(&self, at: &Option<String>) -> Result<()> {
        let v = self.get(&format!("/names{}", Self::where_q(at)))?;
        self.print(&v, |v| Self::list(v, "names"));
        Ok(())
    }

    /// `whereis NAME [--where ...]`.
    pub fn whereis(&self, name: &str, at: &Option<String>) -> Result<()> {
        let v = self.get(&format!("/whereis/{}{}", encode(name), Self::where_q(at)))?;
        self.print(&v, |v| v["pid"].as_str().unwrap_or("undefined").to_string());
        Ok(())
    }

    /// `members SCOPE GROUP [--local|--remote]`.
    pub fn members(&self, scope: &str, group: &str, filter: Option<&str>) -> Result<()> {
        let q = filter.map(|f| format!("?filter={f}")).unwrap_or_default();
        let v = self.get(&format!("/members/{}/{}{q}", encode(scope), encode(group)))?;
        // A member standing for a BEAM process shows the BEAM pid (with its
        // node) and the Cohort pid that reaches it.
        self.print(&v, |v| {
            let beam = v.get("beam").and_then(Value::as_object);
            match (v["members"].as_array(), beam) {
                (Some(ms), Some(beam)) if !ms.is_empty() => ms
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|p| match beam.get(p).and_then(Value::as_str) {
                        Some(e) => format!("{e} (beam, via {p})"),
                        None => p.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => Self::list(v, "members"),
            }
        });
        Ok(())
    }

    /// `groups SCOPE`.
    pub fn groups(&self, scope: &str) -> Result<()> {
        let v = self.get(&format!("/groups/{}", encode(scope)))?;
        self.print(&v, |v| Self::list(v, "groups"));
        Ok(())
    }

    /// `scopes`.
    pub fn scopes(&self) -> Result<()> {
        let v = self.get("/scopes")?;
        self.print(&v, |v| {
            let rows: Vec<String> = v["scopes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| {
                            format!(
                                "{} groups={} members={}{}",
                                s["name"].as_str().unwrap_or(""),
                                s["groups"],
                                s["members"],
                                if s["started_by_admin"] == true {
                                    " (started on use)"
                                } else {
                                    ""
                                }
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if rows.is_empty() {
                "(none)".into()
            } else {
                rows.join("\n")
            }
        });
        Ok(())
    }

    /// `send NAME MESSAGE [--where ...]`.
    pub fn send(&self, name: &str, message: &str, at: &Option<String>) -> Result<()> {
        let v = self.post(
            "/send",
            json!({"name": name, "message": message, "where": at}),
        )?;
        self.print(&v, |v| {
            format!("sent to {}", v["pid"].as_str().unwrap_or(""))
        });
        Ok(())
    }

    /// `unregister NAME`.
    pub fn unregister(&self, name: &str) -> Result<()> {
        let v = self.post("/unregister", json!({ "name": name }))?;
        self.print(&v, |v| {
            format!(
                "unregistered {name} (held by {})",
                v["pid"].as_str().unwrap_or("")
            )
        });
        Ok(())
    }

    /// `sync`.
    pub fn sync(&self) -> Result<()> {
        let v = self.post("/sync", json!({}))?;
        self.print(&v, |_| "synced".into());
        Ok(())
    }

    /// `ctl dashboard`: checks that the node takes the token, then prints
    /// the dashboard's URL with the token in its fragment (`#token=...`:
    /// a browser never sends the fragment, so the token stays out of
    /// requests and logs; the page moves it to its session storage).
    /// `open` hands the URL to `xdg-open` (or macOS `open`).
    pub fn dashboard(&self, open: bool) -> Result<()> {
        let base = match &self.target {
            Target::Tcp(a) => format!("http://{}", browser_host(a)),
            Target::Tls(a, _) => format!("https://{}", browser_host(a)),
            Target::Unix(_) => bail!(
                "the dashboard needs a TCP admin address (a browser cannot open {}); run the node with --admin IP:PORT",
                self.shown
            ),
        };
        // A node started just before (`cohort node ... & cohort ctl
        // dashboard`) gets a few seconds to open its admin API.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.get("/info") {
                Ok(_) => break,
                Err(e)
                    if e.to_string().starts_with("cannot reach")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
        let url = format!("{base}/#token={}", encode(&self.token));
        if self.json {
            println!("{}", json!({ "url": url }));
        } else {
            println!("{url}");
        }
        if open {
            let opener = ["xdg-open", "open"].into_iter().find(|o| {
                std::process::Command::new(o)
                    .arg(&url)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .is_ok()
            });
            match opener {
                Some(o) => crate::out::err!("opened the dashboard with {o}"),
                None => crate::out::err!(
                    "cannot open a browser here (neither xdg-open nor open was found): open the URL above yourself"
                ),
            }
        }
        Ok(())
    }

    /// `block NODE` / `unblock NODE`.
    pub fn block(&self, node: &str, on: bool) -> Result<()> {
        let v = self.post(
            if on { "/block" } else { "/unblock" },
            json!({"node": node}),
        )?;
        self.print(&v, |v| {
            if on {
                format!("blocked {node}: traffic with it is dropped and refused")
            } else if v["was_blocked"] == false {
                format!("{node} was not blocked")
            } else {
                format!("unblocked {node}: the nodes reconnect by themselves")
            }
        });
        Ok(())
    }

    /// `hold`: attaches a process, registers and joins, prints `ready PID`,
    /// then every message, until killed. Returns the exit status.
    pub fn hold(&self, register: &[String], join: &[String]) -> Result<i32> {
        self.rt.block_on(self.hold_async(register, join))
    }

    async fn hold_async(&self, register: &[String], join: &[String]) -> Result<i32> {
        use tungstenite::client::IntoClientRequest;
        let scheme = if matches!(self.target, Target::Tls(..)) {
            "wss"
        } else {
            "ws"
        };
        let url = format!("{scheme}://{}/attach", self.host());
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| anyhow!("cannot attach at {}: {e}", self.shown))?;
        req.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {}", self.token).parse()?,
        );
        let io = self.connect().await?;
        let (mut ws, _) = tokio_tungstenite::client_async(req, io)
            .await
            .map_err(|e| anyhow!("cannot attach at {}: {e}", self.shown))?;
        let mut cmds: Vec<Value> = register
            .iter()
            .map(|n| json!({"op": "register", "name": n}))
            .collect();
        for j in join {
            let (scope, group) = j
                .split_once('/')
                .ok_or_else(|| anyhow!("--join {j:?}: expected SCOPE/GROUP"))?;
            cmds.push(json!({"op": "join", "scope": scope, "group": group}));
        }
        let closed = || anyhow!("the node closed the attach connection");
        let ready = read(&mut ws).await?.ok_or_else(closed)?;
        let pid = ready["pid"].as_str().unwrap_or("").to_string();
        for c in cmds {
            ws.send(tungstenite::Message::Text(c.to_string().into()))
                .await?;
            let r = read(&mut ws).await?.ok_or_else(closed)?;
            if r["event"] == "error" {
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                let what = match c["op"].as_str() {
                    Some("register") => format!("register {:?}", s("name")),
                    _ => format!("join {:?}", format!("{}/{}", s("scope"), s("group"))),
                };
                if r["taken"] == true {
                    crate::out::err!("cohort: {what}: name is taken");
                } else {
                    crate::out::err!(
                        "cohort: {what}: {}",
                        r["error"].as_str().unwrap_or("failed")
                    );
                }
                return Ok(1);
            }
        }
        crate::out::out!("ready {pid}");
        let mut lost_by_kill = false;
        while let Some(ev) = read(&mut ws).await? {
            match ev["event"].as_str() {
                // A term from a BEAM process prints in Erlang's syntax.
                Some("message") => crate::out::out!(
                    "{}",
                    ev["erlang"]
                        .as_str()
                        .or(ev["message"].as_str())
                        .unwrap_or("")
                        .replace('\n', "\\n")
                ),
                Some("conflict") => {
                    crate::out::out!("conflict {}", ev["name"].as_str().unwrap_or(""));
                    lost_by_kill |= ev["killed"] == true;
                }
                Some("name_lost") => crate::out::out!(
                    "unregistered {} by {}",
                    ev["name"].as_str().unwrap_or(""),
                    ev["reason"].as_str().unwrap_or("")
                ),
                Some("exit") => return Ok(if lost_by_kill { 3 } else { 1 }),
                _ => {}
            }
        }
        Ok(if lost_by_kill { 3 } else { 1 })
    }
}

/// The next JSON event of an attach connection; `None` once it closed.
async fn read<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Result<Option<Value>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(tungstenite::Message::Text(t))) => return Ok(Some(serde_json::from_str(&t)?)),
            Some(Ok(tungstenite::Message::Close(_)))
            | None
            | Some(Err(tungstenite::Error::ConnectionClosed)) => return Ok(None),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(anyhow!("attach connection: {e}")),
        }
    }
}

/// The address a browser should use for an admin API bound to `addr`: an
/// unspecified address (`0.0.0.0`, `[::]`) is reached on loopback.
fn browser_host(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        _ => addr.to_string(),
    }
}
