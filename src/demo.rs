//! `serve --demo`: the three simulators on loopback, an org `demo` with one
//! connection per simulator, their contacts loaded into the store, and an admin key.

use unicontacts_adapters::sim::SimSet;
use unicontacts_adapters::ProviderKind;

use crate::auth::Scope;
use crate::ids;
use crate::routes::api_keys::insert_new_key;
use crate::startup::AppState;
use crate::store::connections::{self, Connection, ConnectionSettings, Credentials};
use crate::store::models::SyncRunRow;
use crate::store::orgs;
use crate::sync::run;

/// The simulators' own API key: they are fakes, this is no secret.
pub const SIM_KEY: &str = "demo-provider-key-0123456789";
pub const SIM_SESSION: &str = "sess_demo";
const SIM_PHONE: &str = "918527184400";

pub struct DemoInfo {
    pub admin_key: String,
    pub connections: Vec<(Connection, SyncRunRow)>,
}

/// Creates (or points at the new simulator ports) the demo connections and loads them.
pub async fn setup(state: &AppState, sims: &SimSet) -> Result<DemoInfo, String> {
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
    let (org, key, saved) = state
        .store
        .run(move |conn| {
            let org = orgs::find_or_insert_org(conn, "demo")?;
            let mut saved = Vec::new();
            for (provider, name, base_url) in targets {
                let now = ids::now();
                let credentials = Credentials {
                    api_key: SIM_KEY.to_string(),
                    phone: (provider == ProviderKind::Periskope).then(|| SIM_PHONE.to_string()),
                    session: (provider == ProviderKind::Gateway).then(|| SIM_SESSION.to_string()),
                };
                let c = match connections::find_connection_by_name(conn, &org.id, name)? {
                    Some(mut c) => {
                        c.base_url = base_url;
                        c.credentials = credentials;
                        c.updated_at = now;
                        connections::update_connection(conn, &c)?;
                        c
                    }
                    None => {
                        let c = Connection {
                            id: ids::new_id(ids::CONNECTION),
                            org_id: org.id.clone(),
                            provider,
                            name: name.to_string(),
                            base_url,
                            credentials,
                            settings: ConnectionSettings {
                                default_country: Some("IN".into()),
                                // Simulators on loopback take more than a real provider would.
                                rate_limit_per_second: 200,
                                ..ConnectionSettings::default()
                            },
                            created_at: now,
                            updated_at: now,
                        };
                        connections::insert_connection(conn, &c)?;
                        c
                    }
                };
                saved.push(c);
            }
            let (_, key) = insert_new_key(
                conn,
                &org.id,
                "demo",
                &[Scope::Admin, Scope::ContactsRead, Scope::ContactsWrite],
            )?;
            Ok((org, key, saved))
        })
        .await
        .map_err(|e| format!("demo setup: {e}"))?;
    let mut loaded = Vec::new();
    let ttl = run::lease_ttl(&state.settings);
    for c in saved {
        state.live.forget(&c.id);
        let done = run::sync_now(&state.store, &c, "demo", ttl)
            .await
            .map_err(|e| format!("syncing {}: {e}", c.name))?;
        if done.status != "succeeded" {
            return Err(format!(
                "syncing {}: {}",
                c.name,
                done.error.unwrap_or_default()
            ));
        }
        loaded.push((c, done));
    }
    tracing::info!(org_id = %org.id, "demo ready");
    Ok(DemoInfo {
        admin_key: key,
        connections: loaded,
    })
}
