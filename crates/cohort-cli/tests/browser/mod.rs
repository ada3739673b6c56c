//! What the browser tests of the dashboard share: the WebDriver of
//! headless Chromium (Debian's `chromium` and `chromium-driver`) or
//! headless Firefox (Debian's `firefox-esr` and Mozilla's `geckodriver`),
//! a session on a desktop- or phone-sized screen, scripts run in the page,
//! screenshots, and the dashboard's socket without a browser.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::common::*;

/// One `chromedriver` on a free port, in a process group of its own: at
/// the end (a failed test included) the group is killed, and with it the
/// Chromium it started, which would outlive chromedriver otherwise.
pub struct Driver {
    child: Child,
    /// Where the WebDriver listens.
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The browsers the page is tested in, each through its own WebDriver.
#[derive(Clone, Copy, Debug)]
pub enum Browser {
    /// Debian's `chromium` through `chromedriver` (`chromium-driver`).
    Chromium,
    /// Debian's `firefox-esr` through `geckodriver` (`cargo install
    /// geckodriver`; on PATH or in `~/.cargo/bin`).
    Firefox,
}

impl Browser {
    pub fn name(self) -> &'static str {
        match self {
            Browser::Chromium => "chromium",
            Browser::Firefox => "firefox",
        }
    }
}

/// The WebDriver of `browser`, listening on a free port.
pub fn driver(browser: Browser) -> Driver {
    let port = free_port();
    let mut cmd = match browser {
        Browser::Chromium => {
            let mut c = Command::new("chromedriver");
            c.arg(format!("--port={port}"));
            c
        }
        Browser::Firefox => {
            let cargo_bin = std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cargo/bin/geckodriver"))
                .filter(|p| p.exists());
            let mut c = Command::new(cargo_bin.unwrap_or_else(|| "geckodriver".into()));
            c.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
            c
        }
    };
    let child = cmd
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "the WebDriver of {browser:?} runs ({e}); Debian: apt-get install chromium \
                 chromium-driver firefox-esr, cargo install geckodriver --locked (.ci/run does)"
            )
        });
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    wait_for("the WebDriver listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    d
}

pub fn first_binary(paths: &[&'static str]) -> Option<&'static str> {
    paths
        .iter()
        .copied()
        .find(|p| std::path::Path::new(p).exists())
}

/// The screens the page is tested on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// 1280×800 CSS pixels.
    Desktop,
    /// 390×844 CSS pixels (a phone's), two device pixels to one as on a
    /// phone's screen. Firefox keeps its window at least 500 CSS pixels
    /// wide (its toolbars' minimum widths, headless too, whatever the
    /// pixel ratio), so there the session's profile lifts those minimums
    /// in its `userChrome.css`.
    Phone,
}

pub async fn browser(kind: Browser, driver: &Driver) -> Client {
    browser_on(kind, driver, Screen::Desktop).await
}

pub async fn browser_on(kind: Browser, driver: &Driver, screen: Screen) -> Client {
    // The WebDriver client speaks plain HTTP to its driver; rustls still
    // wants a provider chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (w, h) = match screen {
        Screen::Desktop => (1280, 800),
        Screen::Phone => (390, 844),
    };
    let mut caps = serde_json::Map::new();
    match kind {
        Browser::Chromium => {
            let mut opts = json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={w},{h}"), "--no-first-run", "--disable-extensions"],
            });
            if let Some(b) = first_binary(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
                opts["binary"] = json!(b);
            }
            caps.insert("goog:chromeOptions".into(), opts);
        }
        Browser::Firefox => {
            let mut opts = json!({
                "args": ["-headless", format!("--width={w}"), format!("--height={h}")],
            });
            if screen == Screen::Phone {
                let profile = phone_profile();
                opts["args"] = json!([
                    "-headless",
                    "-profile",
                    profile,
                    "--width=780",
                    "--height=1688"
                ]);
                opts["prefs"] = json!({
                    "layout.css.devPixelsPerPx": "2.0",
                    "toolkit.legacyUserProfileCustomizations.stylesheets": true,
                });
            }
            if let Some(b) = first_binary(&["/usr/bin/firefox-esr", "/usr/bin/firefox"]) {
                opts["binary"] = json!(b);
            }
            caps.insert("moz:firefoxOptions".into(), opts);
        }
    }
    let c = ClientBuilder::rustls()
        .expect("rustls client")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("a {kind:?} session: {e}"));
    c.set_window_size(w, h).await.unwrap();
    c
}

/// A fresh Firefox profile whose `userChrome.css` lets the window be as
/// narrow as a phone, in `target/tmp/dashboard/` (one at a time: an
/// earlier run's is removed first).
fn phone_profile() -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dashboard")
        .join("firefox-phone-profile");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("chrome")).unwrap();
    std::fs::write(
        dir.join("chrome/userChrome.css"),
        ":root, #main-window, toolbar, #nav-bar, #navigator-toolbox, #TabsToolbar, #urlbar-container \
         { min-width: 0 !important; }\n",
    )
    .unwrap();
    dir.to_str()
        .expect("a UTF-8 temporary directory")
        .to_string()
}

/// Collects the page's errors (uncaught exceptions, rejected promises,
/// console.error, CSP violations) into `window.__errs`; installed after
/// every navigation that loads a document.
pub const HOOK: &str = r##"
if (!window.__errs) {
  window.__errs = [];
  window.addEventListener('error', e => window.__errs.push('error: ' + e.message));
  window.addEventListener('unhandledrejection', e => window.__errs.push('rejection: ' + e.reason));
  document.addEventListener('securitypolicyviolation', e => window.__errs.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));
  const ce = console.error.bind(console);
  console.error = (...a) => { window.__errs.push('console: ' + a.join(' ')); ce(...a); };
}
"##;

pub async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script runs")
}

/// Waits until `script` returns true, within `deadline`.
pub async fn until(c: &Client, what: &str, deadline: Duration, script: &str) -> Duration {
    let t = Instant::now();
    loop {
        if js(c, script).await == json!(true) {
            return t.elapsed();
        }
        if t.elapsed() > deadline {
            let body = js(c, "return document.body.innerText").await;
            panic!("timed out ({deadline:?}) waiting for {what}; the page shows:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub async fn shot(c: &Client, kind: Browser, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dashboard")
        .join(kind.name());
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

pub async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

pub fn dashboard_socket(d: &Daemon) -> tungstenite::WebSocket<std::net::TcpStream> {
    Ws::open_at(&d.admin, "/dashboard/ws", &[]).expect("the socket opens without a header")
}

pub fn read(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> Value {
    loop {
        match ws.read().expect("a message") {
            tungstenite::Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            tungstenite::Message::Close(f) => {
                return json!({"closed": f.map(|f| f.reason.to_string())})
            }
            _ => continue,
        }
    }
}

pub fn send(ws: &mut tungstenite::WebSocket<std::net::TcpStream>, v: Value) {
    ws.send(tungstenite::Message::Text(v.to_string().into()))
        .unwrap();
}

/// Reads until a message of `kind` with this id (state and events come
/// in between).
pub fn reply(ws: &mut tungstenite::WebSocket<std::net::TcpStream>, id: u64) -> Value {
    let t = Instant::now();
    loop {
        assert!(t.elapsed() < DEADLINE, "no answer to request {id}");
        let v = read(ws);
        if v["id"] == json!(id) {
            return v;
        }
    }
}

/// Milliseconds, from an `execute_async` script that calls back with a
/// number.
pub async fn ms(c: &Client, script: &str) -> f64 {
    c.execute_async(script, vec![])
        .await
        .expect("script runs")
        .as_f64()
        .expect("a number of milliseconds")
}

/// Resolves with `performance.now()` (ms since the navigation started) as
/// soon as `cond` holds, watching the document's changes.
pub fn when(cond: &str) -> String {
    format!(
        r##"const done = arguments[arguments.length - 1];
           const ok = () => {{ {cond} }};
           if (ok()) return done(performance.now());
           const o = new MutationObserver(() => {{ if (ok()) {{ o.disconnect(); done(performance.now()); }} }});
           o.observe(document.body, {{subtree: true, childList: true, characterData: true, attributes: true}});"##
    )
}
