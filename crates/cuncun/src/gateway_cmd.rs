//! `cuncun gateway`: one gateway node of the scale-out path (see cuncun_gateway::Hub). Each node
//! holds up to ~19,000 terminals (the 20,000 open-files cap per process) and links to the
//! platform's `bus.backbone_listen`.

use anyhow::Context;
use std::io::Write;

#[derive(clap::Args, Clone)]
pub struct GatewayArgs {
    /// The platform's backbone address (its bus.backbone_listen), host:port.
    #[arg(long)]
    pub backbone: String,
    /// Where terminals connect (MQTT 3.1.1); several separated by commas.
    #[arg(long, default_value = "0.0.0.0:1883")]
    pub listen: String,
    /// This node's name in the platform's logs and metrics.
    #[arg(long)]
    pub name: Option<String>,
    /// Terminals connected at once (the process needs this many open files, plus a few).
    #[arg(long, default_value_t = 19_000)]
    pub max_connections: usize,
    /// The backbone secret; read from the environment so it stays out of process listings.
    #[arg(long = "secret", env = "CUNCUN_BUS_BACKBONE_SECRET", hide_env_values = true)]
    pub secret: String,
}

pub async fn run(a: GatewayArgs) -> anyhow::Result<()> {
    let mut listeners = Vec::new();
    for addr in a.listen.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        listeners.push(cuncun_web::bind("--listen", addr).await?);
    }
    anyhow::ensure!(!listeners.is_empty(), "--listen names no address");
    let name = a.name.clone().unwrap_or_else(|| format!("node-{}", std::process::id()));
    let node = cuncun_gateway::start_node(
        listeners,
        cuncun_gateway::NodeConfig {
            backbone: a.backbone.clone(),
            secret: a.secret.clone(),
            name: name.clone(),
            gateway: cuncun_gateway::GatewayConfig { max_connections: a.max_connections, ..Default::default() },
        },
    )
    .await
    .context("starting the gateway node")?;
    {
        // One line per address on stdout: a parent process (the benchmark) reads them.
        let mut out = std::io::stdout().lock();
        for addr in node.gateway.local_addrs() {
            writeln!(out, "gateway node {name} listening mqtt://{addr} backbone {}", a.backbone)?;
        }
        out.flush()?;
    }
    tokio::signal::ctrl_c().await?;
    eprintln!("gateway node {name}: stopping ({} terminals connected)", node.gateway.stats().connected);
    Ok(())
}
