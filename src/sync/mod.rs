//! Reconciliation: sync runs of a connection (`run`), the scheduler that starts
//! them (`scheduler`), and the plain full load `serve --demo` uses.

pub mod link;
pub mod run;
pub mod scheduler;

use std::sync::Arc;

use unicontacts_adapters::{AdapterError, ContactRecord, PageToken, Provider};

use crate::ids;
use crate::store::connections::Connection;
use crate::store::contacts::{self, Origin, Upserted};
use crate::store::{Store, StoreError};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LoadCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub pages: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("provider: {0}")]
    Adapter(#[from] AdapterError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Writes one page of records in a transaction; returns what each upsert did.
fn write_page(
    conn: &mut crate::store::DbConnection,
    c: &Connection,
    records: &[ContactRecord],
) -> Result<Vec<Upserted>, StoreError> {
    use diesel::Connection as _;
    let origin = Origin {
        org_id: &c.org_id,
        connection_id: &c.id,
        provider: c.provider,
    };
    let fetched_at = ids::now();
    conn.transaction(|conn| {
        records
            .iter()
            .map(|r| contacts::upsert_contact(conn, &origin, r, fetched_at).map(|(_, u)| u))
            .collect()
    })
}

/// Pages through the provider's whole list into the store.
pub async fn load_connection(
    store: &Store,
    provider: Arc<dyn Provider>,
    c: &Connection,
) -> Result<LoadCounts, LoadError> {
    let mut counts = LoadCounts::default();
    let mut token: Option<PageToken> = None;
    loop {
        let page = provider.list_contacts(token.as_ref()).await?;
        counts.pages += 1;
        let records = if page.items_are_partial {
            // Thin list items: the full record is the detail call.
            let mut full = Vec::with_capacity(page.contacts.len());
            for item in &page.contacts {
                match provider.get_contact(&item.remote_id).await {
                    Ok(r) => full.push(r),
                    // Gone between the list and the detail: nothing to write.
                    Err(AdapterError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            full
        } else {
            page.contacts
        };
        let connection = c.clone();
        let outcomes = store
            .write(move |conn| write_page(conn, &connection, &records))
            .await?;
        for o in outcomes {
            match o {
                Upserted::Created => counts.created += 1,
                Upserted::Updated => counts.updated += 1,
                Upserted::Unchanged => counts.unchanged += 1,
            }
        }
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(counts),
        }
    }
}
