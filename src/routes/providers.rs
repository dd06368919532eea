//! `GET /v1/providers`: what each provider can do, from the adapters' one
//! source (`ProviderKind::capabilities`), so an integrator knows before writing
//! which operations and fields a connection takes.

use actix_web::HttpResponse;
use serde::Serialize;
use unicontacts_adapters::{Capabilities, ContactInput, ProviderKind};
use utoipa::ToSchema;

use crate::http::auth::Caller;
use crate::http::responses::AuthErrors;

/// One provider's operations and writable fields.
#[derive(Serialize, ToSchema)]
pub struct ProviderView {
    pub provider: ProviderKind,
    #[serde(flatten)]
    pub capabilities: Capabilities,
    /// What `create` cannot go without (after the connection's defaults), and why.
    pub required_on_create: Vec<RequiredField>,
}

#[derive(Serialize, ToSchema)]
pub struct RequiredField {
    #[schema(example = "phone")]
    pub field: &'static str,
    #[schema(example = "is required by Periskope (it is the contact's id)")]
    pub why: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ProvidersView {
    pub data: Vec<ProviderView>,
}

/// Every provider's operations (`get`, `list`, `create`, `update`, `delete`,
/// `batch_create`, `batch_delete`) and the canonical fields each write takes.
#[utoipa::path(get, path = "/v1/providers", tag = "contacts",
    responses(
        (status = 200, description = "The providers", body = ProvidersView),
        AuthErrors,
    ),
    security(("bearer" = [])))]
pub async fn list_providers(_caller: Caller) -> HttpResponse {
    let data = ProviderKind::ALL
        .into_iter()
        .map(|provider| ProviderView {
            provider,
            capabilities: *provider.capabilities(),
            required_on_create: provider
                .missing_on_create(&ContactInput::default())
                .into_iter()
                .map(|(field, why)| RequiredField {
                    field: field.as_str(),
                    why,
                })
                .collect(),
        })
        .collect();
    HttpResponse::Ok().json(ProvidersView { data })
}
