//! Real BEAM nodes for the tests: `erl` processes killed on drop, driven
//! with `erl_call`. A missing `erl`/`erl_call`/`epmd` fails the test loudly.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub const COOKIE: &str = "cohort-erl-test";

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Starts the host's EPMD if none runs (as `erl -name` would).
pub fn ensure_epmd() {
    let st = Command::new("epmd")
        .arg("-daemon")
        .status()
        .expect("`epmd` not found: these tests need Erlang/OTP (apt-get install erlang-base)");
    assert!(st.success(), "epmd -daemon failed");
}

/// One `erl -name NAME@127.0.0.1 -noshell` node.
pub struct Beam {
    pub name: String,
    child: Child,
}

impl Beam {
    /// Starts a node running `eval` (Erlang expressions, or "ok") and waits
    /// until it answers `erl_call`.
    pub fn start(short: &str, eval: &str) -> Beam {
        let name = format!("{short}@127.0.0.1");
        let child = Command::new("erl")
            .args([
                "-name",
                &name,
                "-setcookie",
                COOKIE,
                "-noshell",
                "-eval",
                eval,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("`erl` not found: these tests need Erlang/OTP (apt-get install erlang-base)");
        let beam = Beam { name, child };
        let t0 = Instant::now();
        loop {
            if beam.try_eval("ok.").as_deref() == Some("ok") {
                return beam;
            }
            assert!(t0.elapsed() < DEADLINE, "{} did not come up", beam.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn try_eval(&self, expr: &str) -> Option<String> {
        use std::io::Write;
        let mut c = Command::new("erl_call")
            .args(["-c", COOKIE, "-n", &self.name, "-timeout", "15", "-e"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "`erl_call` not found: these tests need Erlang/OTP (apt-get install erlang-base)",
            );
        // erl_call wants the form ended by a newline; it may exit before
        // reading (node not up yet), so a broken pipe is not an error.
        let _ = c
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{expr}\n").as_bytes());
        let out = c.wait_with_output().unwrap();
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // erl_call prints `{ok, Result}`.
        s.strip_prefix("{ok, ")
            .and_then(|r| r.strip_suffix('}'))
            .map(|r| r.to_string())
    }

    /// Evaluates Erlang expressions on the node; panics if it cannot.
    pub fn eval(&self, expr: &str) -> String {
        self.try_eval(expr)
            .unwrap_or_else(|| panic!("erl_call on {} failed for {expr}", self.name))
    }

    /// Waits until `expr` evaluates to `want`.
    pub fn wait_for(&self, expr: &str, want: &str) {
        let t0 = Instant::now();
        let mut last;
        loop {
            last = self.try_eval(expr);
            if last.as_deref() == Some(want) {
                return;
            }
            assert!(
                t0.elapsed() < DEADLINE,
                "on {}: {expr} is {last:?}, wanted {want}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the OS process (the node goes down as if it crashed).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Beam {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (polling) until `f` holds.
pub async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Cohort node (its cluster cookie is unrelated to the Erlang one).
pub async fn cohort_node() -> cohort::Node {
    cohort::Node::builder()
        .name(format!("{}@127.0.0.1", unique("c")))
        .cookie("cohort-side")
        .start()
        .await
        .unwrap()
}

pub fn config(name: &str) -> cohort_erl::BridgeConfig {
    cohort_erl::BridgeConfig::new(name).cookie(COOKIE)
}

/// Logs to the test's output with `RUST_LOG=cohort_erl=debug`.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
