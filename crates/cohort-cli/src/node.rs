//! `cohort node`: runs one node until SIGINT or SIGTERM, then leaves the
//! cluster cleanly (peers drop its entries at once).

use std::time::Duration;

use anyhow::{Context, Result};
use cohort::cookie::CookieSource;
use cohort::Node;
use tracing::{debug, error, info, warn};

use crate::admin;
use crate::config::{AdminAddr, ErlangConfig, NodeConfig};

/// Where the cookie comes from: `--cookie-file`/config, else the
/// `COHORT_COOKIE` environment variable, else `~/.cohort.cookie`.
fn cookie_source(cfg: &NodeConfig) -> CookieSource {
    if let Some(p) = &cfg.cookie_file {
        return CookieSource::File(p.clone());
    }
    match std::env::var("COHORT_COOKIE") {
        Ok(v) if !v.is_empty() => CookieSource::Value(v),
        _ => CookieSource::Default,
    }
}

/// Starts the node described by `cfg`.
pub async fn start(cfg: &NodeConfig) -> Result<Node> {
    let mut b = Node::builder()
        .name(cfg.name.as_str())
        .listen(cfg.listen.clone())
        .cookie_source(cookie_source(cfg))
        .mesh(cfg.mesh)
        .global_groups(cfg.groups.clone())
        .names(cfg.names.clone());
    if let Some(t) = cfg.tick_interval {
        b = b.tick_interval(t);
    }
    if let Some(t) = cfg.peer_timeout {
        b = b.peer_timeout(t);
    }
    if let Some(files) = &cfg.tls {
        b = b.tls(files.clone());
    }
    if let Some(t) = cfg.handshake_timeout {
        b = b.handshake_timeout(t);
    }
    if let Some(n) = cfg.max_handshakes {
        b = b.max_handshakes(n);
    }
    if let Some(t) = cfg.probe_timeout {
        b = b.probe_timeout(t);
    }
    if let Some(n) = cfg.max_frame {
        b = b.max_frame(n);
    }
    if let Some(n) = cfg.max_meta {
        b = b.max_meta(n);
    }
    let node = b.start().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    for s in &cfg.scopes {
        node.scope(s);
    }
    crate::sessions::publish(&node);
    for s in &cfg.discovery {
        node.discover(s.clone())?;
    }
    Ok(node)
}

/// Starts the Erlang distribution endpoint of `node` (fails with one line
/// when no EPMD runs or the name is taken).
pub async fn start_erlang(node: &Node, e: &ErlangConfig) -> Result<cohort_erl::Bridge> {
    let mut c = cohort_erl::BridgeConfig::new(e.node.clone());
    c.cookie_file = e.cookie_file.clone();
    c.peers = e.connect.clone();
    c.scopes = e.scopes.clone();
    c.epmd = e.epmd.clone();
    cohort_erl::Bridge::start(node, c)
        .await
        .map_err(|err| anyhow::anyhow!("erlang: {err}"))
}

/// Keeps dialing a seed until its session is up (seeds may start later).
/// A failure is logged when it first happens or changes, then at most once
/// a minute: a seed that refuses us forever must not flood the log. A seed
/// where a live node of our name is connected is not tried again: its
/// address goes to `clash`.
fn connect_seed(node: &Node, addr: String, clash: tokio::sync::mpsc::UnboundedSender<String>) {
    let node = node.clone();
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(50);
        let mut last: Option<(String, tokio::time::Instant)> = None;
        let mut repeats = 0u64;
        loop {
            match node.connect(&addr).await {
                Ok(peer) => {
                    info!(%addr, %peer, "connected to seed");
                    return;
                }
                Err(cohort::ConnectError::ShuttingDown) => return,
                Err(cohort::ConnectError::Refused(cohort::core::proto::RefuseReason::Alive)) => {
                    error!(%addr, node = %node.name(),
                        "seed refused us: a live node named {} is connected there (the name is taken)", node.name());
                    let _ = clash.send(addr);
                    return;
                }
                Err(e) => {
                    let text = e.to_string();
                    let now = tokio::time::Instant::now();
                    match &last {
                        Some((t, at))
                            if *t == text && now.duration_since(*at) < Duration::from_secs(60) =>
                        {
                            repeats += 1;
                            debug!(%addr, error = %text, "seed still not reachable");
                        }
                        _ => {
                            warn!(%addr, error = %text, repeated = repeats, "seed not reachable yet; retrying");
                            last = Some((text, now));
                            repeats = 0;
                        }
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    });
}

/// Runs the daemon until a signal.
pub async fn run(cfg: NodeConfig) -> Result<()> {
    // The admin API's token and address first: a node that cannot serve
    // what it was asked to never joins the cluster.
    let listener = match cfg.admin.addr {
        AdminAddr::Off => None,
        _ => {
            let token = crate::token::for_node(cfg.admin.token_file.as_deref())?;
            admin::bind(&cfg.admin).await?.map(|l| (l, token))
        }
    };
    let node = start(&cfg).await?;
    let bridge = match &cfg.erlang {
        Some(e) => match start_erlang(&node, e).await {
            Ok(b) => Some(std::sync::Arc::new(b)),
            Err(err) => {
                node.shutdown().await;
                return Err(err);
            }
        },
        None => None,
    };
    let (admin_desc, unix_path) = match listener {
        None => ("none".to_string(), None),
        Some((l, token)) => {
            let desc = l.describe();
            let path = match &l {
                crate::listen::Listener::Unix(_, p) => Some(p.clone()),
                _ => None,
            };
            admin::serve(
                node.clone(),
                l,
                &cfg.admin,
                token,
                cfg.bench_api,
                cfg.scope_limits,
                cfg.scopes.clone(),
                bridge.clone(),
            );
            (desc, path)
        }
    };
    // Before the line scripts wait for: a SIGHUP sent after it reloads.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    // One line on stdout that scripts can wait for.
    crate::out::out!(
        "node {} listening on {} admin {} creation {}",
        node.name(),
        node.local_addr(),
        admin_desc,
        node.creation()
    );
    // stdout has its one line (a script may stop reading after it): the
    // Erlang side is in the log and `ctl info`.
    if let Some(b) = &bridge {
        info!(erlang_node = %b.name(), port = b.port(), scopes = %b.scopes().join(","), "erlang endpoint started");
    }
    info!(node = %node.name(), listen = %node.local_addr(), admin = %admin_desc, "node started");
    let (clash_tx, mut clash_rx) = tokio::sync::mpsc::unbounded_channel();
    for addr in &cfg.connect {
        connect_seed(&node, addr.clone(), clash_tx.clone());
    }
    drop(clash_tx);
    // Every seed refusing us because a live node has our name: we are
    // the duplicate; stop rather than retry forever.
    let seeds: std::collections::BTreeSet<&String> = cfg.connect.iter().collect();
    let clashed = async {
        let mut refused = std::collections::BTreeSet::new();
        while let Some(addr) = clash_rx.recv().await {
            refused.insert(addr);
            if refused.len() == seeds.len() {
                return Some(refused);
            }
        }
        std::future::pending().await
    };
    tokio::pin!(clashed);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => { let _ = crate::tls::reload_tls(&node, "SIGHUP"); }
            Some(refused) = &mut clashed => {
                if let Some(b) = &bridge {
                    b.stop();
                }
                node.shutdown().await;
                if let Some(p) = &unix_path {
                    let _ = std::fs::remove_file(p);
                }
                let list: Vec<String> = refused.into_iter().collect();
                anyhow::bail!(
                    "node name {} is already taken: a live node of that name is connected to every seed ({}); \
                     stop the other node or choose another name",
                    node.name(),
                    list.join(", ")
                );
            }
        }
    }
    info!(node = %node.name(), "stopping: saying goodbye to peers");
    // Leave the Erlang cluster first: BEAM nodes drop our members at once.
    if let Some(b) = &bridge {
        b.stop();
    }
    node.shutdown().await;
    if let Some(p) = unix_path {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
