//! The node configuration: command-line flags and an optional TOML file.
//!
//! The file holds everything the flags hold, plus global groups, process
//! group scopes, name tables with their modes and conflict policies, and
//! timing. A flag given on the command line wins over the file. Any error
//! is one line naming the bad entry.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use cohort::NodeName;
use cohort::{GlobalGroupDef, GlobalGroupsConfig, Publish};
use cohort::{LossPolicy, Mode, NamesConfig, TableConfig};
use serde::Deserialize;

use crate::admin::{check_name, ScopeLimits};

/// The TOML file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Node name, `name@host`.
    pub name: Option<String>,
    /// Listen address for peers.
    pub listen: Option<String>,
    /// Seed addresses to connect to.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Cookie file.
    pub cookie_file: Option<PathBuf>,
    /// Admin API address.
    pub admin: Option<String>,
    /// Tick interval in milliseconds.
    pub tick_interval_ms: Option<u64>,
    /// Peer timeout in milliseconds.
    pub peer_timeout_ms: Option<u64>,
    /// Transitive full mesh.
    pub mesh: Option<bool>,
    /// Global groups.
    #[serde(default)]
    pub global_groups: Vec<FileGroup>,
    /// Process-group scopes to start (the default scope `pg` always runs).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Name tables; the first is the default. Without any: one locked
    /// table `global` with the kill policy.
    #[serde(default)]
    pub name_tables: Vec<FileTable>,
    /// At most this many process-group scopes run on the node (admin calls
    /// start a scope on its first use; past the cap they are refused).
    pub max_scopes: Option<usize>,
    /// A scope started by an admin call is stopped again after this many
    /// milliseconds without local members, watchers or use.
    pub scope_idle_ms: Option<u64>,
}

/// One `[[global_groups]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGroup {
    /// Group name.
    pub name: String,
    /// `normal` or `hidden`.
    pub publish: String,
    /// Node names.
    pub nodes: Vec<String>,
}

/// One `[[name_tables]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTable {
    /// Table name.
    pub name: String,
    /// `locked` or `eventual`.
    pub mode: Option<String>,
    /// `kill`, `notify` or `drop_both`.
    pub policy: Option<String>,
    /// Whether a pid may hold several names.
    pub multiple_names: Option<bool>,
}

/// What the flags say (each overrides the file).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--name`.
    pub name: Option<String>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--connect`, repeated.
    pub connect: Vec<String>,
    /// `--cookie-file`.
    pub cookie_file: Option<PathBuf>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--admin`.
    pub admin: Option<String>,
    /// Hidden `--bench-api`: serve the `/bench/` endpoints.
    pub bench_api: bool,
}

/// Everything a node needs, checked.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name.
    pub name: NodeName,
    /// Listen address.
    pub listen: String,
    /// Seeds.
    pub connect: Vec<String>,
    /// Cookie file, if not from the environment or the default file.
    pub cookie_file: Option<PathBuf>,
    /// Admin API address.
    pub admin: SocketAddr,
    /// Tick interval.
    pub tick_interval: Option<Duration>,
    /// Peer timeout.
    pub peer_timeout: Option<Duration>,
    /// Mesh on or off.
    pub mesh: bool,
    /// Global groups.
    pub groups: GlobalGroupsConfig,
    /// Extra scopes.
    pub scopes: Vec<String>,
    /// Name tables.
    pub names: NamesConfig,
    /// Serve the bench-only `/bench/` admin endpoints.
    pub bench_api: bool,
    /// Limits of the scopes admin calls start.
    pub scope_limits: ScopeLimits,
}

/// The default admin address: loopback only.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:4370";

/// Checks an admin address given to `cohort ctl`: HOST:PORT, no scheme,
/// no path (clap shows the error with the flag's name).
pub fn admin_addr(s: &str) -> std::result::Result<String, String> {
    let example = "HOST:PORT, for example 127.0.0.1:4370";
    if s.contains("://") {
        return Err(format!("{s:?} has a scheme; give {example}"));
    }
    if s.contains('/') {
        return Err(format!("{s:?} has a path; give {example}"));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} has no port; give {example}"));
    };
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return Err(format!(
            "{s:?} is not HOST:PORT ([ADDR]:PORT for IPv6); give {example}"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(s.to_string()),
        _ => Err(format!("{s:?}: {port:?} is not a port; give {example}")),
    }
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("config {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        // toml's message spans lines (a snippet); keep it to one line.
        let msg = e.message().to_string();
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start].lines().count().max(1);
                format!(" (line {line})")
            })
            .unwrap_or_default();
        anyhow!("config {}: {msg}{at}", path.display())
    })
}

fn node_name(s: &str, what: &str) -> Result<NodeName> {
    NodeName::new(s).map_err(|e| anyhow!("{what}: {e}"))
}

/// Combines flags and file into a checked configuration.
pub fn resolve(flags: &Flags) -> Result<NodeConfig> {
    let file = match &flags.config {
        Some(p) => read_file(p)?,
        None => FileConfig::default(),
    };
    let name = flags
        .name
        .clone()
        .or(file.name.clone())
        .ok_or_else(|| anyhow!("--name is required (or `name` in the config file)"))?;
    let name = node_name(&name, "--name")?;
    let listen = flags
        .listen
        .clone()
        .or(file.listen.clone())
        .ok_or_else(|| anyhow!("--listen is required (or `listen` in the config file)"))?;
    let admin_s = flags
        .admin
        .clone()
        .or(file.admin.clone())
        .unwrap_or_else(|| DEFAULT_ADMIN.into());
    let admin: SocketAddr = admin_s
        .parse()
        .map_err(|_| anyhow!("--admin: {admin_s:?} is not an address (HOST:PORT with an IP)"))?;
    let mut connect = file.connect.clone();
    connect.extend(flags.connect.iter().cloned());
    let mut groups = Vec::new();
    for (i, g) in file.global_groups.iter().enumerate() {
        let at = format!("global_groups[{}] ({:?})", i + 1, g.name);
        check_name("the group name", &g.name).map_err(|e| anyhow!("{at}: {e}"))?;
        let publish: Publish = g
            .publish
            .parse()
            .map_err(|e: String| anyhow!("{at}: {e}"))?;
        let nodes = g
            .nodes
            .iter()
            .map(|n| node_name(n, &format!("{at}.nodes")))
            .collect::<Result<Vec<_>>>()?;
        groups.push(GlobalGroupDef::new(g.name.clone(), publish, nodes));
    }
    let groups = GlobalGroupsConfig { groups };
    groups.validate(&name).map_err(|e| anyhow!("{e}"))?;
    for (i, sc) in file.scopes.iter().enumerate() {
        check_name("the scope name", sc).map_err(|e| anyhow!("scopes[{}]: {e}", i + 1))?;
    }
    let mut names = NamesConfig::empty();
    let mut table_names = std::collections::HashSet::new();
    for (i, t) in file.name_tables.iter().enumerate() {
        let at = format!("name_tables[{}] ({:?})", i + 1, t.name);
        check_name("the table name", &t.name).map_err(|e| anyhow!("{at}: {e}"))?;
        if !table_names.insert(t.name.as_str()) {
            bail!("{at}: a table named {:?} is defined twice", t.name);
        }
        let mut tc = TableConfig::new(t.name.clone());
        if let Some(m) = &t.mode {
            tc = tc.mode(match m.as_str() {
                "locked" => Mode::Locked,
                "eventual" => Mode::Eventual,
                other => {
                    bail!("{at}: unknown mode {other:?} (expected \"locked\" or \"eventual\")")
                }
            });
        }
        if let Some(p) = &t.policy {
            tc = tc.policy(match p.as_str() {
                "kill" => LossPolicy::Kill,
                "notify" => LossPolicy::Notify,
                "drop_both" => LossPolicy::DropBoth,
                other => bail!("{at}: unknown policy {other:?} (expected \"kill\", \"notify\" or \"drop_both\")"),
            });
        }
        if let Some(m) = t.multiple_names {
            tc = tc.multiple_names(m);
        }
        names = names.table(tc);
    }
    if file.name_tables.is_empty() {
        names = NamesConfig::default();
    }
    Ok(NodeConfig {
        name,
        listen,
        connect,
        cookie_file: flags.cookie_file.clone().or(file.cookie_file.clone()),
        admin,
        tick_interval: file.tick_interval_ms.map(Duration::from_millis),
        peer_timeout: file.peer_timeout_ms.map(Duration::from_millis),
        mesh: file.mesh.unwrap_or(true),
        groups,
        scopes: file.scopes.clone(),
        names,
        bench_api: flags.bench_api,
        scope_limits: {
            let d = ScopeLimits::default();
            if file.max_scopes == Some(0) {
                bail!("max_scopes: must be at least 1 (the default scope `pg` always runs)");
            }
            ScopeLimits {
                max_scopes: file.max_scopes.unwrap_or(d.max_scopes),
                idle: file
                    .scope_idle_ms
                    .map(Duration::from_millis)
                    .unwrap_or(d.idle),
                sync_wait: d.sync_wait,
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(text: &str) -> Result<NodeConfig> {
        let dir =
            std::env::temp_dir().join(format!("cohort-cfg-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(&p, text).unwrap();
        let r = resolve(&Flags {
            config: Some(p),
            ..Default::default()
        });
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn a_full_file_resolves() {
        let c = with_file(
            r#"
name = "a@127.0.0.1"
listen = "127.0.0.1:0"
connect = ["127.0.0.1:9"]
scopes = ["jobs"]
[[global_groups]]
name = "g1"
publish = "normal"
nodes = ["a@127.0.0.1", "b@127.0.0.1"]
[[global_groups]]
name = "g2"
publish = "hidden"
nodes = ["c@127.0.0.1"]
[[name_tables]]
name = "global"
mode = "eventual"
policy = "notify"
"#,
        )
        .unwrap();
        assert_eq!(c.name.as_str(), "a@127.0.0.1");
        assert_eq!(c.groups.groups.len(), 2);
        assert_eq!(c.groups.groups[1].publish, Publish::Hidden);
        assert_eq!(c.scopes, vec!["jobs".to_string()]);
        assert_eq!(c.admin.to_string(), DEFAULT_ADMIN);
    }

    #[test]
    fn errors_name_the_bad_entry_on_one_line() {
        let cases = [
            ("name = \"a@h\"\nlisten = \"x\"\nbogus = 1\n", "bogus"),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[global_groups]]\nname = \"g1\"\npublish = \"loud\"\nnodes = [\"a@h\"]\n",
                "global_groups[1] (\"g1\"): unknown publish type \"loud\"",
            ),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[global_groups]]\nname = \"g1\"\npublish = \"normal\"\nnodes = [\"a@h\", \"b@h\"]\n[[global_groups]]\nname = \"g2\"\npublish = \"normal\"\nnodes = [\"b@h\"]\n",
                "node b@h is listed in both \"g1\" and \"g2\"",
            ),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[global_groups]]\nname = \"g1\"\npublish = \"normal\"\nnodes = [\"nohost\"]\n",
                "global_groups[1] (\"g1\").nodes: invalid node name \"nohost\"",
            ),
            ("name = \"a@h\"\nlisten = \"x\"\n[[name_tables]]\nname = \"t\"\nmode = \"fast\"\n", "unknown mode \"fast\""),
            ("name = [\n", "line"),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[name_tables]]\nname = \"t\"\n[[name_tables]]\nname = \"t\"\nmode = \"eventual\"\n",
                "name_tables[2] (\"t\"): a table named \"t\" is defined twice",
            ),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[name_tables]]\nname = \"\"\n",
                "name_tables[1] (\"\"): the table name is empty",
            ),
            ("name = \"a@h\"\nlisten = \"x\"\nscopes = [\"ok\", \"\"]\n", "scopes[2]: the scope name is empty"),
            (
                "name = \"a@h\"\nlisten = \"x\"\n[[global_groups]]\nname = \"\"\npublish = \"normal\"\nnodes = [\"a@h\"]\n",
                "the group name is empty",
            ),
        ];
        for (text, want) in cases {
            let err = with_file(text).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
            assert!(!err.contains('\n'), "{err:?} spans lines");
        }
    }

    #[test]
    fn flags_override_and_bad_flags_are_named() {
        let e = resolve(&Flags {
            name: Some("bad".into()),
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--name:"), "{e}");
        let e = resolve(&Flags {
            name: Some("a@h".into()),
            listen: Some("127.0.0.1:0".into()),
            admin: Some("nowhere".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--admin:"), "{e}");
    }
}
