//! `serve --demo`: the three simulators on loopback, an org `demo` with one
//! connection per simulator, their contacts loaded into the store, and an admin key.
//! Everything goes through the services, as an operator's calls would.

use unicontacts_adapters::ProviderKind;
use unicontacts_simulators::SimSet;

use crate::error::ApiError;
use crate::service::api_keys::{self, OrgRef, Scope};
use crate::service::connections::{
    self, CreateConnectionRequest, CredentialsInput, SettingsInput, UpdateConnectionRequest,
};
use crate::service::sync_runs::{self, RunStatus, SyncCounts, Trigger};
use crate::state::State;
use crate::store::connections::Connection;

/// The simulators' own API key: they are fakes, this is no secret.
pub const SIM_KEY: &str = "demo-provider-key-0123456789";
pub const SIM_SESSION: &str = "sess_demo";
const SIM_PHONE: &str = "918527184400";

pub struct DemoInfo {
    pub admin_key: String,
    pub connections: Vec<(Connection, SyncCounts)>,
}

fn credentials(provider: ProviderKind) -> CredentialsInput {
    CredentialsInput {
        api_key: Some(SIM_KEY.to_string()),
        phone: (provider == ProviderKind::Periskope).then(|| SIM_PHONE.to_string()),
        session: (provider == ProviderKind::Gateway).then(|| SIM_SESSION.to_string()),
    }
}

/// Creates (or points at the new simulator ports) the demo connections and loads them.
pub async fn setup(state: &State, sims: &SimSet) -> Result<DemoInfo, String> {
    let demo = |e: ApiError| format!("demo setup: {e}");
    let key = api_keys::create(
        &state.store,
        OrgRef::Name("demo"),
        "demo",
        &[Scope::Admin, Scope::ContactsRead, Scope::ContactsWrite],
    )
    .await
    .map_err(demo)?;
    let org_id = key.org.id.clone();
    let targets = [
        (
            ProviderKind::Periskope,
            "Periskope (demo)",
            sims.periskope.api_base(),
        ),
        (ProviderKind::Wacr, "WA.cr (demo)", sims.wacr.api_base()),
        (
            ProviderKind::Gateway,
            "WhatsApp Gateway (demo)",
            sims.gateway.api_base(),
        ),
    ];
    let mut loaded = Vec::new();
    for (provider, name, base_url) in targets {
        let c = match connections::find_by_name(state, &org_id, name)
            .await
            .map_err(demo)?
        {
            Some(existing) => connections::update(
                state,
                &org_id,
                &existing.id,
                UpdateConnectionRequest {
                    provider: None,
                    name: None,
                    base_url: Some(Some(base_url)),
                    credentials: Some(credentials(provider)),
                    settings: Some(settings(provider)),
                },
                true,
            )
            .await
            .map_err(demo)?,
            None => connections::create(
                state,
                &org_id,
                CreateConnectionRequest {
                    provider,
                    name: name.to_string(),
                    base_url: Some(base_url),
                    credentials: credentials(provider),
                    settings: settings(provider),
                },
                true,
            )
            .await
            .map_err(demo)?,
        };
        let done = sync_runs::run_now(state, &c, Trigger::Demo)
            .await
            .map_err(|e| format!("syncing {}: {e}", c.name))?;
        if done.status != RunStatus::Succeeded {
            return Err(format!(
                "syncing {}: {}",
                c.name,
                done.error.unwrap_or_default()
            ));
        }
        loaded.push((c, SyncCounts::of(&done)));
    }
    tracing::info!(org_id = %org_id, "demo ready");
    Ok(DemoInfo {
        admin_key: key.key,
        connections: loaded,
    })
}

/// The demo connections' settings: simulators on loopback take more than a real
/// provider would; WA.cr's writes take the status, source and kind it requires
/// from the connection (the simulator's status 1 is "New", source 1 "Website").
fn settings(provider: ProviderKind) -> SettingsInput {
    let wacr = provider == ProviderKind::Wacr;
    SettingsInput {
        default_country: Some(Some("IN".into())),
        rate_limit_per_second: Some(200),
        default_status_id: wacr.then_some(Some(1)),
        default_source_id: wacr.then_some(Some(1)),
        default_kind: wacr.then_some(Some(unicontacts_adapters::canonical::ContactKind::Lead)),
        ..SettingsInput::default()
    }
}
