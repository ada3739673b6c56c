//! `cohort bench --vs-otp`: the same scenario on Erlang/OTP nodes (`pg`,
//! `global`), run right before each Cohort repetition at the same sizes.
//!
//! The OTP side is `otp_bench.erl` (shipped beside this file), compiled with
//! `erlc` into a temporary directory once per run; each repetition is one
//! `erl` controller that starts its own OTP peer nodes on loopback, runs the
//! workload inside them, stops them, and prints one `RESULT key=value ...`
//! line with the metric keys of `cohort bench`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

use super::scenarios::Sample;

/// The OTP side's module.
const MODULE: &str = include_str!("otp_bench.erl");

/// What to tell a user whose machine lacks Erlang.
pub const INSTALL: &str = "--vs-otp needs Erlang/OTP 25 or later (`erl` and `erlc` on PATH): \
     `apt-get install erlang-base` on Debian and Ubuntu, `brew install erlang` on macOS";

/// Every metric the OTP side may report, with its unit.
const METRICS: [(&str, &str); 25] = [
    ("join_ops_per_s", "ops/s"),
    ("conv_all_nodes_ms_from_start", "ms"),
    ("conv_lag_after_last_join_ms", "ms"),
    ("mem_bytes_per_member_local", "B"),
    ("mem_bytes_per_member_remote", "B"),
    ("members_ns_local", "ns"),
    ("members_ns_remote", "ns"),
    ("members_missing_ns", "ns"),
    ("reg_seq_ops_per_s", "ops/s"),
    ("visible_lag_after_last_return_ms", "ms"),
    ("mem_bytes_per_name_local", "B"),
    ("mem_bytes_per_name_remote", "B"),
    ("whereis_ns_local", "ns"),
    ("whereis_ns_remote", "ns"),
    ("whereis_missing_ns", "ns"),
    ("unreg_seq_ops_per_s", "ops/s"),
    ("reg_conc10_ops_per_s", "ops/s"),
    ("reg_1proc_per_node_ops_per_s", "ops/s"),
    ("split_cleanup_ms", "ms"),
    ("heal_full_convergence_ms", "ms"),
    ("heal_names_convergence_ms", "ms"),
    ("heal_pg_convergence_ms", "ms"),
    ("cleanup_all_survivors_ms", "ms"),
    ("cleanup_names_ms", "ms"),
    ("cleanup_pg_ms", "ms"),
];

/// Whether `prog` is an executable file in a directory of `PATH`.
fn on_path(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            let f = d.join(prog);
            f.is_file()
                && std::fs::metadata(&f).is_ok_and(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o111 != 0
                })
        })
    })
}

/// The compiled OTP side, in a temporary directory removed on drop.
pub struct Otp {
    dir: PathBuf,
    /// `erlang:system_info(otp_release)`, e.g. "25".
    pub release: String,
}

impl Drop for Otp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Otp {
    /// Checks that Erlang is installed and compiles the OTP side.
    pub fn prepare() -> Result<Otp> {
        if !on_path("erl") || !on_path("erlc") {
            bail!("{INSTALL}");
        }
        let dir = std::env::temp_dir().join(format!("cohort-bench-otp-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut otp = Otp {
            dir,
            release: String::new(),
        };
        let src = otp.dir.join("otp_bench.erl");
        std::fs::write(&src, MODULE)?;
        let out = Command::new("erlc")
            .arg("-o")
            .arg(&otp.dir)
            .arg(&src)
            .output()
            .map_err(|e| anyhow!("running erlc: {e}; {INSTALL}"))?;
        if !out.status.success() {
            bail!(
                "erlc otp_bench.erl: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let out = Command::new("erl")
            .args(["-noshell", "-eval"])
            .arg("io:format(\"~s\", [erlang:system_info(otp_release)]), halt().")
            .output()
            .map_err(|e| anyhow!("running erl: {e}; {INSTALL}"))?;
        let release = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if release.parse::<u32>().map_or(true, |r| r < 25) {
            bail!("--vs-otp needs Erlang/OTP 25 or later (its `peer` module); erl says release {release:?}");
        }
        otp.release = release;
        Ok(otp)
    }

    /// The directory holding `otp_bench.beam`.
    fn code(&self) -> &Path {
        &self.dir
    }

    /// One repetition of the OTP side with `args` (see `otp_bench.erl`);
    /// the samples carry `fields`.
    pub fn run(&self, args: &[String], fields: &Map<String, Value>) -> Result<Vec<Sample>> {
        let out = Command::new("erl")
            .arg("-noshell")
            .arg("-pa")
            .arg(self.code())
            .args(["-run", "otp_bench", "main"])
            .args(args)
            .output()
            .map_err(|e| anyhow!("running erl: {e}; {INSTALL}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
            let tail: String = stdout
                .lines()
                .chain(String::from_utf8_lossy(&out.stderr).lines())
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .chars()
                .take(500)
                .collect();
            bail!("OTP side `{}` failed: {tail}", args.join(" "));
        };
        parse(line, fields)
    }
}

/// `key=value ...` → samples of the known metrics.
fn parse(line: &str, fields: &Map<String, Value>) -> Result<Vec<Sample>> {
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("OTP side answered {kv:?}"))?;
            let &(metric, unit) = METRICS
                .iter()
                .find(|(m, _)| *m == k)
                .with_context(|| format!("OTP side reported an unknown metric {k:?}"))?;
            let value: f64 = v
                .parse()
                .with_context(|| format!("OTP side reported {kv:?}"))?;
            Ok(Sample {
                metric,
                unit,
                value,
                fields: fields.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_metrics_and_refuses_others() {
        let s = parse("join_ops_per_s=12.5 cleanup_pg_ms=3", &Map::new()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].metric, s[0].unit, s[0].value),
            ("join_ops_per_s", "ops/s", 12.5)
        );
        assert!(parse("nosuch=1", &Map::new()).is_err());
        assert!(parse("join_ops_per_s=x", &Map::new()).is_err());
    }
}
