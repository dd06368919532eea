//! Identity control: merge and split people by hand (`/v1/people/{id}/merge`,
//! `/split`), a person's history, the undo of any operation, blocked
//! identifier values, and the identifiers too many contacts share to link
//! them into one person. Every route needs the `admin` scope.

use actix_web::{http::header, web, HttpRequest, HttpResponse};

use crate::error::{ApiError, ErrorBody};
use crate::http::audit;
use crate::http::auth::AdminCaller;
use crate::http::extract::{parse_list_query, read_json_checked};
use crate::http::responses::{AuthErrors, BodyErrors, InvalidQuery, NotFound};
use crate::page::{NoFilters, Page, PageQuery};
use crate::service::identity::{
    self as service, BlockRequest, BlockedValueView, EraseRequest, ErasureView, HistoryEntry,
    IdentityOperationView, MergeRequest, SplitRequest, SuppressionView, UndoRequest,
};
use crate::service::people::{self as people, OversharedIdentifier, PersonView};
use crate::state::State;

/// The org's phones and LIDs that more live contacts hold than the
/// `max_contacts_per_identifier` setting: each links none of them (a
/// switchboard number); in `id` order.
#[utoipa::path(get, path = "/v1/admin/identity/overshared", tag = "admin",
    params(PageQuery<500>),
    responses(
        (status = 200, description = "A page of identifiers, with how many live contacts hold each", body = Page<OversharedIdentifier>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_overshared(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (_, page) = parse_list_query::<NoFilters, 500>(req.query_string())?;
    let page = people::overshared(&state, &admin.0.org_id, page).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Merge another person into this one: the contacts of both are one person
/// from now on, whatever their identifiers say and whatever a later sync,
/// live read or relink finds. The other person's id then answers 404 with
/// `details.merged_into`. With `dry_run`, the person as it would be, and
/// nothing changed.
#[utoipa::path(post, path = "/v1/people/{id}/merge", tag = "admin",
    params(("id" = String, Path, description = "The surviving person (`per_…`)")),
    request_body = MergeRequest,
    responses(
        (status = 200, description = "The surviving person; `operation_id` undoes the merge (absent from a dry run's answer)", body = PersonView),
        (status = 404, description = "Either person is not the org's; `details.merged_into` when it was merged away", body = ErrorBody),
        (status = 409, description = "`person_id` is the person of the path", body = ErrorBody),
        AuthErrors, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn merge_person(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: MergeRequest = read_json_checked(&req, body).await?;
    let other = body.person_id.clone();
    let view = service::merge(&state, &admin.0.org_id, &admin.0.key_id, &path, body).await?;
    audit::note(
        &req,
        [other].into_iter().chain(view.operation_id.clone()),
        None,
    );
    Ok(HttpResponse::Ok().json(view))
}

/// Split contacts out of a person into a new one, kept apart from the rest:
/// no later relink joins them again through the identifiers they share, until
/// the split is undone. With `dry_run`, the new person as it would be (200),
/// and nothing changed.
#[utoipa::path(post, path = "/v1/people/{id}/split", tag = "admin",
    params(("id" = String, Path, description = "The person split (`per_…`)")),
    request_body = SplitRequest,
    responses(
        (status = 201, description = "The new person; `Location` is it; `operation_id` undoes the split", body = PersonView),
        (status = 200, description = "A dry run: the new person as it would be (its id is not kept; no `operation_id`)", body = PersonView),
        (status = 409, description = "A named contact is not (or no longer) a live contact of the person, or every contact is named: `details.contact_ids`", body = ErrorBody),
        (status = 404, description = "The person is not the org's; `details.merged_into` when it was merged away", body = ErrorBody),
        AuthErrors, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn split_person(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: SplitRequest = read_json_checked(&req, body).await?;
    let dry_run = body.dry_run;
    let view = service::split(&state, &admin.0.org_id, &admin.0.key_id, &path, body).await?;
    if dry_run {
        return Ok(HttpResponse::Ok().json(view));
    }
    audit::note(
        &req,
        [view.id.clone()]
            .into_iter()
            .chain(view.operation_id.clone()),
        None,
    );
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/people/{}", view.id)))
        .json(view))
}

/// How a person came to be: first the identifiers that link its contacts
/// now, then the operations made by hand on its contacts, newest first (each
/// with who made it, when, why and the request).
#[utoipa::path(get, path = "/v1/people/{id}/history", tag = "admin",
    params(("id" = String, Path, description = "Person id (`per_…`)"), PageQuery<200>),
    responses(
        (status = 200, description = "A page of the person's history", body = Page<HistoryEntry>),
        AuthErrors, NotFound, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn person_history(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (_, page) = parse_list_query::<NoFilters, 200>(req.query_string())?;
    let page = service::history(&state, &admin.0.org_id, &path, page).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// One identity operation.
#[utoipa::path(get, path = "/v1/admin/identity-operations/{id}", tag = "admin",
    params(("id" = String, Path, description = "Operation id (`idop_…`)")),
    responses(
        (status = 200, description = "The operation", body = IdentityOperationView),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn get_operation(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let op = service::operation(&state, &admin.0.org_id, &path).await?;
    Ok(HttpResponse::Ok().json(op))
}

/// Undo an identity operation: every contact it concerned goes back to the
/// person it had before (people merged or split away come back under their
/// ids), its bonds (or its block) are lifted, and the undo is recorded as an
/// operation of its own. The body (`reason`) is optional. An undo cannot be
/// undone in its turn (422): make the operation again.
#[utoipa::path(post, path = "/v1/admin/identity-operations/{id}/undo", tag = "admin",
    params(("id" = String, Path, description = "Operation id (`idop_…`)")),
    request_body(content = UndoRequest, description = "Optional: an empty body keeps no reason"),
    responses(
        (status = 200, description = "The undo, an operation of its own", body = IdentityOperationView),
        (status = 409, description = "Undone already (`details.undone_by`), or later operations build on it (`details.operations`: undo them first)", body = ErrorBody),
        AuthErrors, NotFound, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn undo_operation(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let empty = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_none_or(|v| v.as_bytes() == b"0")
        && req.headers().get(header::TRANSFER_ENCODING).is_none();
    let body: UndoRequest = if empty {
        UndoRequest::default()
    } else {
        read_json_checked(&req, body).await?
    };
    let undo = service::undo(&state, &admin.0.org_id, &admin.0.key_id, &path, body).await?;
    audit::note(&req, [undo.id.clone()], None);
    Ok(HttpResponse::Ok().json(undo))
}

/// Block an identifier value: it never links two contacts, and the people it
/// linked come apart at once (events `person.split`).
#[utoipa::path(post, path = "/v1/admin/identity/blocked-values", tag = "admin",
    request_body = BlockRequest,
    responses(
        (status = 201, description = "Blocked; `Location` is it", body = BlockedValueView),
        (status = 409, description = "Blocked already (`details.blocked_value_id`)", body = ErrorBody),
        AuthErrors, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn block_value(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: BlockRequest = read_json_checked(&req, body).await?;
    let blocked = service::block(&state, &admin.0.org_id, &admin.0.key_id, body).await?;
    audit::note(
        &req,
        [blocked.id.clone(), blocked.operation_id.clone()],
        None,
    );
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/admin/identity/blocked-values/{}", blocked.id),
        ))
        .json(blocked))
}

/// The org's blocked identifier values, in id order.
#[utoipa::path(get, path = "/v1/admin/identity/blocked-values", tag = "admin",
    params(PageQuery<500>),
    responses(
        (status = 200, description = "A page of blocked values", body = Page<BlockedValueView>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_blocked_values(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (_, page) = parse_list_query::<NoFilters, 500>(req.query_string())?;
    let page = service::blocked(&state, &admin.0.org_id, page).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Lift a block: the value links again, at once (events `person.merged`).
#[utoipa::path(delete, path = "/v1/admin/identity/blocked-values/{id}", tag = "admin",
    params(("id" = String, Path, description = "Blocked value id (`blk_…`)")),
    responses(
        (status = 204, description = "Lifted"),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn unblock_value(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    service::unblock(&state, &admin.0.org_id, &admin.0.key_id, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Erase a person: its contacts, their raw payloads, search text and keys go
/// from the store (the rows, not a tombstone), with the deleted contacts of the
/// org holding one of its phones or LIDs; the events about them keep ids
/// only. Each identifier it had is suppressed (kept as a keyed hash only): no
/// sync, live read or write-through create stores it again until the
/// suppression is lifted. `at_providers` also deletes the contacts at the
/// providers that can, each contact's outcome reported.
#[utoipa::path(post, path = "/v1/people/{id}/erase", tag = "admin",
    params(("id" = String, Path, description = "Person id (`per_…`)")),
    request_body = EraseRequest,
    responses(
        (status = 200, description = "Erased: the suppression, and each contact removed with what happened at its provider", body = ErasureView),
        (status = 404, description = "The person is not the org's; `details.merged_into` when it was merged away", body = ErrorBody),
        AuthErrors, BodyErrors,
    ),
    security(("bearer" = [])))]
pub async fn erase_person(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: EraseRequest = read_json_checked(&req, body).await?;
    let erased = service::erase(&state, &admin.0.org_id, &admin.0.key_id, &path, body).await?;
    audit::note(
        &req,
        [erased.suppression_id.clone()]
            .into_iter()
            .chain(erased.contacts.iter().map(|c| c.contact_id.clone())),
        None,
    );
    Ok(HttpResponse::Ok().json(erased))
}

/// The org's suppressions (what erasures left: the kinds of identifier, never
/// the values), in id order.
#[utoipa::path(get, path = "/v1/admin/suppressions", tag = "admin",
    params(PageQuery<500>),
    responses(
        (status = 200, description = "A page of suppressions", body = Page<SuppressionView>),
        AuthErrors, InvalidQuery,
    ),
    security(("bearer" = [])))]
pub async fn list_suppressions(
    state: web::Data<State>,
    admin: AdminCaller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (_, page) = parse_list_query::<NoFilters, 500>(req.query_string())?;
    let page = service::suppressions(&state, &admin.0.org_id, page).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Lift a suppression: the next sync brings the erased person's contacts back,
/// as new contacts.
#[utoipa::path(delete, path = "/v1/admin/suppressions/{id}", tag = "admin",
    params(("id" = String, Path, description = "Suppression id (`sup_…`)")),
    responses(
        (status = 204, description = "Lifted"),
        AuthErrors, NotFound,
    ),
    security(("bearer" = [])))]
pub async fn lift_suppression(
    state: web::Data<State>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    service::lift_suppression(&state, &admin.0.org_id, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}
