//! The three simulators over one world, started together (the demo, the
//! benches and most tests).

use std::net::SocketAddr;

use crate::harness::RateLimit;
use crate::world::World;
use crate::{gateway, periskope, wacr};

/// The three simulators over one world, so people are shared between them.
pub struct SimSet {
    pub world: World,
    pub api_key: String,
    pub session: String,
    pub periskope: periskope::PeriskopeSim,
    pub wacr: wacr::WacrSim,
    pub gateway: gateway::GatewaySim,
}

/// Where each simulator listens (port 0 for any free port).
#[derive(Debug, Clone, Copy)]
pub struct SimAddrs {
    pub periskope: SocketAddr,
    pub wacr: SocketAddr,
    pub gateway: SocketAddr,
}

impl Default for SimAddrs {
    fn default() -> Self {
        let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            periskope: any,
            wacr: any,
            gateway: any,
        }
    }
}

/// Starts all three over `World::generate(seed, size)`.
pub async fn start_all(
    seed: u64,
    size: usize,
    api_key: &str,
    session: &str,
    addrs: SimAddrs,
    rate: Option<RateLimit>,
) -> std::io::Result<SimSet> {
    let world = World::generate(seed, size);
    let periskope = periskope::start(&world, api_key, addrs.periskope, rate).await?;
    let wacr = wacr::start(&world, api_key, addrs.wacr, rate).await?;
    let gateway = gateway::start(&world, api_key, session, addrs.gateway, rate).await?;
    Ok(SimSet {
        world,
        api_key: api_key.to_string(),
        session: session.to_string(),
        periskope,
        wacr,
        gateway,
    })
}
