//! HTTP routes, one file per resource, and the OpenAPI document built from them.
//! A handler parses the request, calls one service function and shapes the answer.

pub mod api_keys;
pub mod audit;
pub mod connection_contacts;
pub mod connections;
pub mod contact_writes;
pub mod contacts;
mod contract;
pub mod events;
pub mod health;
pub mod identity;
pub mod people;
pub mod providers;
pub mod sync_runs;
pub mod webhooks;

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ApiError, ErrorCode};
use contract::Contract;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "unicontacts",
        description = "One contacts API over the WhatsApp CRMs a business uses (Periskope, WA.cr, WhatsApp Gateway). Every error is answered as `{\"error\": {\"code\", \"message\", \"details\"}}`; every response carries `x-request-id`."
    ),
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        connections::create_connection,
        connections::list_connections,
        connections::get_connection,
        connections::update_connection,
        connections::delete_connection,
        connections::pause_sync,
        connections::resume_sync,
        api_keys::create_api_key,
        api_keys::list_api_keys,
        api_keys::delete_api_key,
        audit::list_audit_events,
        identity::list_overshared,
        identity::list_blocked_values,
        identity::block_value,
        identity::unblock_value,
        identity::get_operation,
        identity::undo_operation,
        identity::merge_person,
        identity::split_person,
        identity::person_history,
        identity::erase_person,
        identity::list_suppressions,
        identity::lift_suppression,
        contacts::list_contacts,
        contacts::get_contact,
        contact_writes::create_contact,
        contact_writes::update_contact,
        contact_writes::delete_contact,
        contact_writes::batch_create,
        contact_writes::batch_delete,
        connection_contacts::get_connection_contact,
        people::get_person,
        people::list_people,
        events::list_events,
        providers::list_providers,
        sync_runs::trigger_sync,
        sync_runs::list_sync_runs,
        sync_runs::get_sync_run,
        sync_runs::cancel_sync_run,
        sync_runs::list_held_deletions,
        sync_runs::apply_held_deletions,
        sync_runs::discard_held_deletions,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::get_webhook,
        webhooks::update_webhook,
        webhooks::delete_webhook,
        webhooks::rotate_secret,
        webhooks::list_deliveries,
        webhooks::replay_delivery,
        webhooks::recover,
    ),
    components(schemas(crate::error::ErrorBody, crate::service::api_keys::Scope)),
    modifiers(&BearerAuth, &Contract),
    tags(
        (name = "contacts", description = "Canonical contacts and people across providers (scope `contacts:read`)"),
        (name = "admin", description = "Connections, API keys and the audit log (scope `admin`)"),
        (name = "sync", description = "Reconciliation runs: start one, read the history (scope `admin`)"),
        (name = "webhooks", description = "Signed webhooks of the change feed's events, their delivery log, replay and recovery (scope `admin`)"),
        (name = "operations", description = "Health and readiness probes"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as served at `/openapi.json`.
pub fn document() -> serde_json::Value {
    contract::rendered(ApiDoc::openapi())
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `Authorization: Bearer uck_…`"))
                    .build(),
            ),
        );
    }
}

/// A GET route that answers HEAD too: the same status and headers
/// (`Content-Length`, `ETag`, …), no body (actix leaves the body of a HEAD out).
fn get() -> actix_web::Route {
    web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
}

/// Registers every route. Each path is a `resource`, so a wrong method on a known
/// path is a 405 rather than a 404.
pub fn configure(cfg: &mut web::ServiceConfig, openapi: serde_json::Value) {
    cfg.service(web::resource("/healthz").route(get().to(health::healthz)))
        .service(web::resource("/readyz").route(get().to(health::readyz)))
        .service(web::resource("/metrics").route(get().to(health::metrics)))
        .service(web::resource("/docs").route(get().to(docs_redirect)))
        // Scopes with static prefixes: a request is matched against the few routes
        // of its own scope, not every route's pattern in turn (route matching was
        // the largest single cost of a cached read).
        .service(
            web::scope("/v1/contacts")
                .service(web::resource("").route(get().to(contacts::list_contacts)))
                .service(
                    web::resource("/{id}")
                        .route(get().to(contacts::get_contact))
                        .route(web::patch().to(contact_writes::update_contact))
                        .route(web::delete().to(contact_writes::delete_contact)),
                ),
        )
        .service(
            web::scope("/v1/people")
                .service(web::resource("").route(get().to(people::list_people)))
                .service(web::resource("/{id}").route(get().to(people::get_person)))
                .service(web::resource("/{id}/merge").route(web::post().to(identity::merge_person)))
                .service(web::resource("/{id}/split").route(web::post().to(identity::split_person)))
                .service(web::resource("/{id}/history").route(get().to(identity::person_history)))
                .service(
                    web::resource("/{id}/erase").route(web::post().to(identity::erase_person)),
                ),
        )
        .service(web::resource("/v1/events").route(get().to(events::list_events)))
        .service(web::resource("/v1/providers").route(get().to(providers::list_providers)))
        .service(
            web::scope("/v1/connections/{connection_id}/contacts")
                .service(web::resource("").route(web::post().to(contact_writes::create_contact)))
                // The batches before `{remote_id}`, which would take `batch` for an id.
                .service(
                    web::resource("/batch").route(web::post().to(contact_writes::batch_create)),
                )
                .service(
                    web::resource("/batch-delete")
                        .route(web::post().to(contact_writes::batch_delete)),
                )
                .service(
                    web::resource("/{remote_id}")
                        .route(get().to(connection_contacts::get_connection_contact)),
                ),
        )
        .service(
            web::scope("/v1/admin")
                .service(
                    web::resource("/connections")
                        .route(web::post().to(connections::create_connection))
                        .route(get().to(connections::list_connections)),
                )
                .service(
                    web::resource("/connections/{id}")
                        .route(get().to(connections::get_connection))
                        .route(web::patch().to(connections::update_connection))
                        .route(web::delete().to(connections::delete_connection)),
                )
                .service(
                    web::resource("/connections/{id}/sync")
                        .route(web::post().to(sync_runs::trigger_sync)),
                )
                .service(web::resource("/sync-runs").route(get().to(sync_runs::list_sync_runs)))
                .service(
                    web::resource("/connections/{id}/pause-sync")
                        .route(web::post().to(connections::pause_sync)),
                )
                .service(
                    web::resource("/connections/{id}/resume-sync")
                        .route(web::post().to(connections::resume_sync)),
                )
                .service(
                    web::resource("/sync-runs/{id}/cancel")
                        .route(web::post().to(sync_runs::cancel_sync_run)),
                )
                .service(
                    web::resource("/sync-runs/{id}/held-deletions")
                        .route(get().to(sync_runs::list_held_deletions)),
                )
                .service(
                    web::resource("/sync-runs/{id}/held-deletions/apply")
                        .route(web::post().to(sync_runs::apply_held_deletions)),
                )
                .service(
                    web::resource("/sync-runs/{id}/held-deletions/discard")
                        .route(web::post().to(sync_runs::discard_held_deletions)),
                )
                .service(web::resource("/sync-runs/{id}").route(get().to(sync_runs::get_sync_run)))
                .service(
                    web::resource("/api-keys")
                        .route(web::post().to(api_keys::create_api_key))
                        .route(get().to(api_keys::list_api_keys)),
                )
                .service(web::resource("/audit-events").route(get().to(audit::list_audit_events)))
                .service(
                    web::resource("/identity/overshared")
                        .route(get().to(identity::list_overshared)),
                )
                .service(
                    web::resource("/identity/blocked-values")
                        .route(web::post().to(identity::block_value))
                        .route(get().to(identity::list_blocked_values)),
                )
                .service(
                    web::resource("/identity/blocked-values/{id}")
                        .route(web::delete().to(identity::unblock_value)),
                )
                .service(
                    web::resource("/suppressions").route(get().to(identity::list_suppressions)),
                )
                .service(
                    web::resource("/suppressions/{id}")
                        .route(web::delete().to(identity::lift_suppression)),
                )
                .service(
                    web::resource("/identity-operations/{id}")
                        .route(get().to(identity::get_operation)),
                )
                .service(
                    web::resource("/identity-operations/{id}/undo")
                        .route(web::post().to(identity::undo_operation)),
                )
                .service(
                    web::resource("/api-keys/{id}")
                        .route(web::delete().to(api_keys::delete_api_key)),
                )
                .service(
                    web::resource("/webhooks")
                        .route(web::post().to(webhooks::create_webhook))
                        .route(get().to(webhooks::list_webhooks)),
                )
                .service(
                    web::resource("/webhooks/{id}")
                        .route(get().to(webhooks::get_webhook))
                        .route(web::patch().to(webhooks::update_webhook))
                        .route(web::delete().to(webhooks::delete_webhook)),
                )
                .service(
                    web::resource("/webhooks/{id}/rotate-secret")
                        .route(web::post().to(webhooks::rotate_secret)),
                )
                .service(
                    web::resource("/webhooks/{id}/deliveries")
                        .route(get().to(webhooks::list_deliveries)),
                )
                .service(
                    web::resource("/webhooks/{id}/deliveries/{delivery_id}/replay")
                        .route(web::post().to(webhooks::replay_delivery)),
                )
                .service(
                    web::resource("/webhooks/{id}/recover")
                        .route(web::post().to(webhooks::recover)),
                ),
        )
        // Swagger UI with its assets vendored into the binary: the page works
        // offline. Last: its `/docs/{_:.*}` pattern is no API request's business.
        .service(SwaggerUi::new("/docs/{_:.*}").external_url_unchecked("/openapi.json", openapi));
}

async fn docs_redirect() -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

/// Unknown routes.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    ))
}
