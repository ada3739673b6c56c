//! `cohort ctl`: drives a node through its admin API. Exit status 0 on
//! success, 1 on an error (with a message on stderr); `hold` exits 3 when
//! its process is killed for losing a name clash.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// The admin client.
pub struct Ctl {
    base: String,
    json: bool,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
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

impl Ctl {
    /// A client for the admin API at `admin` (HOST:PORT).
    pub fn new(admin: &str, json: bool) -> Self {
        Ctl {
            base: format!("http://{admin}"),
            json,
        }
    }

    fn answer(&self, resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value> {
        let mut resp =
            resp.map_err(|e| anyhow!("cannot reach the admin API at {}: {e}", self.base))?;
        let status = resp.status();
        let v: Value = resp
            .body_mut()
            .read_json()
            .with_context(|| format!("admin API answered {status} without JSON"))?;
        if !status.is_success() {
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
        self.answer(agent().get(format!("{}{path}", self.base)).call())
    }

    fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.answer(agent().post(format!("{}{path}", self.base)).send_json(body))
    }

    fn print(&self, v: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            crate::out!("{v}");
        } else {
            let s = human(v);
            if !s.is_empty() {
                crate::out!("{s}");
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
                "node: {} (creation {})\nstate: {}\nown group: {}\nown group nodes: {}\nsynced: {}\nsync errors: {}\nno contact: {}\nother groups: {}\nmonitors: {}",
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
            )
        });
        Ok(())
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
        self.print(&v, |v| Self::list(v, "members"));
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
        let url = format!("{}/attach", self.base.replacen("http://", "ws://", 1));
        let (mut ws, _) = tungstenite::connect(url.as_str())
            .map_err(|e| anyhow!("cannot attach at {url}: {e}"))?;
        let read = |ws: &mut tungstenite::WebSocket<_>| -> Result<Option<Value>> {
            loop {
                match ws.read() {
                    Ok(tungstenite::Message::Text(t)) => {
                        return Ok(Some(serde_json::from_str(&t)?))
                    }
                    Ok(tungstenite::Message::Close(_))
                    | Err(tungstenite::Error::ConnectionClosed) => return Ok(None),
                    Ok(_) => continue,
                    Err(e) => return Err(anyhow!("attach connection: {e}")),
                }
            }
        };
        let ready =
            read(&mut ws)?.ok_or_else(|| anyhow!("the node closed the attach connection"))?;
        let pid = ready["pid"].as_str().unwrap_or("").to_string();
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
        for c in cmds {
            ws.send(tungstenite::Message::Text(c.to_string().into()))?;
            let r =
                read(&mut ws)?.ok_or_else(|| anyhow!("the node closed the attach connection"))?;
            if r["event"] == "error" {
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                let what = match c["op"].as_str() {
                    Some("register") => format!("register {:?}", s("name")),
                    _ => format!("join {:?}", format!("{}/{}", s("scope"), s("group"))),
                };
                if r["taken"] == true {
                    crate::err!("cohort: {what}: name is taken");
                } else {
                    crate::err!(
                        "cohort: {what}: {}",
                        r["error"].as_str().unwrap_or("failed")
                    );
                }
                return Ok(1);
            }
        }
        crate::out!("ready {pid}");
        let mut lost_by_kill = false;
        while let Some(ev) = read(&mut ws)? {
            match ev["event"].as_str() {
                Some("message") => crate::out!(
                    "{}",
                    ev["message"].as_str().unwrap_or("").replace('\n', "\\n")
                ),
                Some("conflict") => {
                    crate::out!("conflict {}", ev["name"].as_str().unwrap_or(""));
                    lost_by_kill |= ev["killed"] == true;
                }
                Some("name_lost") => crate::out!(
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
