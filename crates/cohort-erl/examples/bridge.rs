//! A Cohort node that joins a BEAM cluster: it bridges the given pg scopes,
//! puts one Cohort process in each `--join SCOPE/GROUP`, prints what that
//! process receives, and prints the members of every bridged group when they
//! change.
//!
//! ```sh
//! cargo run -p cohort-erl --example bridge -- --name cohort@127.0.0.1 \
//!     --cookie secret --peer beam@127.0.0.1 --scope demo --join demo/workers
//! ```

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Erlang node name of this node.
    #[arg(long, default_value = "cohort@127.0.0.1")]
    name: String,
    /// Cookie (default: the first line of ~/.erlang.cookie).
    #[arg(long)]
    cookie: Option<String>,
    /// BEAM node to dial (repeatable).
    #[arg(long)]
    peer: Vec<String>,
    /// pg scope to bridge (repeatable).
    #[arg(long)]
    scope: Vec<String>,
    /// SCOPE/GROUP for the example's Cohort process (repeatable).
    #[arg(long)]
    join: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COHORT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let node = cohort::Node::builder()
        .name("bridge@127.0.0.1")
        .cookie("cohort-local")
        .start()
        .await?;
    let mut config = cohort_erl::BridgeConfig::new(&args.name);
    config.cookie = args.cookie;
    config.peers = args.peer;
    config.scopes = args.scope.clone();
    let bridge = cohort_erl::Bridge::start(&node, config).await?;
    let mut me = node.spawn();
    for j in &args.join {
        let (scope, group) = j
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("--join takes SCOPE/GROUP"))?;
        node.scope(scope).join(group, me.pid())?;
    }
    if !args.join.is_empty() {
        println!("joined as {:?}", bridge.erlang_pid(me.pid()));
    }
    for s in &args.scope {
        let (mut mon, snap) = node.scope(s).monitor_scope()?;
        for (g, pids) in snap {
            println!("{s}/{g}: {} member(s)", pids.len());
        }
        let scope = node.scope(s);
        let s = s.clone();
        tokio::spawn(async move {
            while let Some(ev) = mon.recv().await {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(lagged) => {
                        println!("{s}: {lagged}; {} member(s) now", scope.members("").len());
                        continue;
                    }
                };
                let members = scope.members(&ev.group);
                println!(
                    "{s}/{}: {:?} -> {} member(s)",
                    ev.group,
                    ev.kind,
                    members.len()
                );
            }
        });
    }
    loop {
        tokio::select! {
            m = me.recv() => match m {
                Some(cohort::Message::Data { payload, .. }) => match cohort_erl::decode_term(&payload) {
                    Ok(t) => println!("received {t}"),
                    Err(_) => println!("received {} bytes", payload.len()),
                },
                Some(_) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
}
