//! Contacts written through to their provider: create, update, delete, and
//! batches of each. A write is checked whole before anything is sent (the
//! provider's capabilities for the operation and each field, our validation
//! rules, what the provider requires on create, the connection's defaults filled
//! in), goes through the credential's quota at interactive priority, is never
//! retried blindly, and is stored only once the provider confirmed it: then the
//! canonical contact is in the store at once (found by id, by phone, in its
//! person) and the live-read copy is dropped on every replica.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use unicontacts_adapters::canonical::{Address, CanonicalContact, ContactKind};
use unicontacts_adapters::{
    phone, AdapterError, Capabilities, ContactInput, ContactRecord, Operation, ProviderKind,
};
use utoipa::ToSchema;
use validator::Validate;

use crate::change::{self, Scope};
use crate::error::{ApiError, ErrorCode, FieldErrors};
use crate::ids;
use crate::notices::Notice;
use crate::service::connections;
use crate::service::contacts::store_record;
use crate::state::State;
use crate::store::connections::Connection;
use crate::store::contacts as queries;
use crate::store::events;
use crate::store::models::ContactRow;

/// A label: 1 to 100 characters, not only spaces, no commas.
pub struct Label;

impl utoipa::PartialSchema for Label {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(100))
            .pattern(Some(
                r"^[^,\u0000-\u001F\u007F-\u009F]*[^,\s\u0000-\u001F\u007F-\u009F][^,\u0000-\u001F\u007F-\u009F]*$",
            ))
            .into()
    }
}

impl ToSchema for Label {}

/// Most contacts in one batch.
pub const MAX_BATCH: usize = 100;

/// A contact's fields to write, in canonical terms; each provider takes what
/// `GET /v1/providers` lists for the operation.
#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct ContactWrite {
    #[validate(length(min = 1, max = 255, message = "must be 1 to 255 characters"))]
    #[schema(min_length = 1, max_length = 255)]
    pub display_name: Option<String>,
    #[validate(length(min = 1, max = 255, message = "must be 1 to 255 characters"))]
    #[schema(min_length = 1, max_length = 255)]
    pub first_name: Option<String>,
    #[validate(length(min = 1, max = 255, message = "must be 1 to 255 characters"))]
    #[schema(min_length = 1, max_length = 255)]
    pub last_name: Option<String>,
    /// Any written form (`+91 95378 51844`, `919537851844`, or local digits with
    /// the connection's `default_country`); each provider gets it in its own form.
    #[schema(example = "+91 95378 51844")]
    pub phone: Option<String>,
    #[validate(
        email(message = "must be an email address"),
        length(max = 191, message = "must be at most 191 characters")
    )]
    #[schema(format = Email, max_length = 191)]
    pub email: Option<String>,
    #[validate(length(min = 1, max = 255, message = "must be 1 to 255 characters"))]
    #[schema(min_length = 1, max_length = 255)]
    pub company: Option<String>,
    pub kind: Option<ContactKind>,
    /// Replaces the contact's labels.
    #[validate(length(max = 50, message = "must hold at most 50 labels"))]
    #[schema(max_items = 50, inline, value_type = Option<Vec<Label>>)]
    pub labels: Option<Vec<String>>,
    pub is_internal: Option<bool>,
    #[validate(length(max = 5000, message = "must be at most 5000 characters"))]
    #[schema(max_length = 5000)]
    pub notes: Option<String>,
    #[validate(nested)]
    pub address: Option<AddressWrite>,
    #[validate(range(min = 1, message = "must be a positive id"))]
    #[schema(minimum = 1)]
    pub status_id: Option<i64>,
    #[validate(range(min = 1, message = "must be a positive id"))]
    #[schema(minimum = 1)]
    pub source_id: Option<i64>,
    /// Replaces the contact's CRM lists (WA.cr `groups`).
    #[validate(length(max = 100, message = "must hold at most 100 lists"))]
    #[schema(max_items = 100)]
    pub crm_list_ids: Option<Vec<i64>>,
}

#[derive(Debug, Clone, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressWrite {
    #[validate(length(max = 500, message = "must be at most 500 characters"))]
    #[schema(max_length = 500)]
    pub street: Option<String>,
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    #[schema(max_length = 255)]
    pub city: Option<String>,
    #[validate(length(max = 255, message = "must be at most 255 characters"))]
    #[schema(max_length = 255)]
    pub state: Option<String>,
    #[validate(length(max = 20, message = "must be at most 20 characters"))]
    #[schema(max_length = 20)]
    pub postal_code: Option<String>,
}

/// What a batch did, item by item.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    pub results: Vec<BatchItem>,
    pub summary: BatchSummary,
    /// The provider written to (for the audit log).
    #[serde(skip)]
    pub provider: ProviderKind,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchItem {
    /// The item's place in the request.
    pub index: usize,
    /// What the item alone would have been answered: 201, 204, 4xx or 5xx.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<CanonicalContact>,
    /// The error envelope's `error` of the item.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct BatchSummary {
    /// Items written (created, or deleted for a batch delete).
    pub created: usize,
    pub failed: usize,
}

/// How a write is to go.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// An earlier attempt with the same `Idempotency-Key` ended without knowing
    /// whether the provider wrote it: look before creating again.
    pub look_first: bool,
}

fn unsupported_operation(provider: ProviderKind, op: Operation) -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedByProvider,
        format!("{provider} does not support {op} of contacts"),
    )
    .with_details(json!({ "operation": op.as_str(), "provider": provider.as_str() }))
}

/// The body as the provider's input: every field error at once; the fields the
/// provider cannot write for `op`; what it requires on create, after the
/// connection's defaults.
fn input_of(c: &Connection, op: Operation, body: &ContactWrite) -> Result<ContactInput, ApiError> {
    let caps: &Capabilities = c.provider.capabilities();
    let mut errors = FieldErrors::of(body);
    let phone = body.phone.as_deref().and_then(|raw| {
        let parsed = if raw.contains('@') {
            phone::phone_from_jid(raw)
        } else {
            Some(phone::phone_from_text(raw, c.settings.default_country.as_deref()))
        };
        let e164 = parsed.and_then(|p| p.e164);
        if e164.is_none() {
            errors.add(
                "phone",
                "is not a phone number (give the country code, such as +91 95378 51844, or set the connection's default_country)",
            );
        }
        e164
    });
    if let Some(labels) = &body.labels {
        for (i, l) in labels.iter().enumerate() {
            if l.trim().is_empty() || l.chars().count() > 100 || l.contains(',') {
                errors.add(
                    format!("labels[{i}]"),
                    "must be 1 to 100 characters without commas",
                );
            }
        }
    }
    let mut input = ContactInput {
        display_name: body.display_name.clone(),
        first_name: body.first_name.clone(),
        last_name: body.last_name.clone(),
        phone,
        email: body.email.clone(),
        company: body.company.clone(),
        kind: body.kind,
        labels: body
            .labels
            .as_ref()
            .map(|l| l.iter().map(|s| s.trim().to_string()).collect()),
        is_internal: body.is_internal,
        notes: body.notes.clone(),
        address: body.address.as_ref().map(|a| Address {
            street: a.street.clone(),
            city: a.city.clone(),
            state: a.state.clone(),
            postal_code: a.postal_code.clone(),
            country_ref: None,
        }),
        status_id: body.status_id,
        source_id: body.source_id,
        crm_list_ids: body.crm_list_ids.clone(),
    };
    let unwritable = caps.unwritable(op, &input.fields());
    if !unwritable.is_empty() {
        let names: Vec<&str> = unwritable.iter().map(|f| f.as_str()).collect();
        return Err(ApiError::new(
            ErrorCode::UnsupportedByProvider,
            format!(
                "{} cannot {op} {} of a contact",
                c.provider,
                names.join(", ")
            ),
        )
        .with_details(json!({
            "operation": op.as_str(),
            "provider": c.provider.as_str(),
            "unsupported_fields": names,
            "writable": caps.fields_of(op),
        })));
    }
    if op == Operation::Create || op == Operation::BatchCreate {
        // The connection's defaults, for the fields the provider takes.
        let takes = |f| caps.fields_of(op).contains(&f);
        if input.status_id.is_none() && takes(unicontacts_adapters::WriteField::StatusId) {
            input.status_id = c.settings.default_status_id;
        }
        if input.source_id.is_none() && takes(unicontacts_adapters::WriteField::SourceId) {
            input.source_id = c.settings.default_source_id;
        }
        if input.kind.is_none() && takes(unicontacts_adapters::WriteField::Kind) {
            input.kind = c.settings.default_kind;
        }
        for (field, why) in c.provider.missing_on_create(&input) {
            if !errors.has(field.as_str()) {
                errors.add(field.as_str(), why);
            }
        }
    } else if input.fields().is_empty() && errors.is_empty() {
        errors.add("(body)", "names no field to change");
    }
    errors.into_result()?;
    Ok(input)
}

/// What a provider's refusal of a write means to our client.
async fn write_error(
    state: &State,
    c: &Connection,
    input: &ContactInput,
    e: AdapterError,
) -> ApiError {
    match e {
        AdapterError::Rejected {
            ref message,
            ref fields,
            ..
        } => {
            // A duplicate the provider names: the contact we hold, when we do.
            let duplicate = ["phone", "email"].into_iter().find(|f| {
                fields[*f]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m.as_str().is_some_and(|m| m.contains("already exists"))))
            });
            if let Some(field) = duplicate {
                if let Some(existing) = existing_contact(state, c, input, field).await {
                    return ApiError::conflict(format!(
                        "the provider already holds a contact with this {field}"
                    ))
                    .with_details(json!({ "existing_contact_id": existing, "field": field }))
                    .with_cause(e);
                }
            }
            let mut errors = FieldErrors::new();
            if let Some(map) = fields.as_object() {
                for (field, messages) in map {
                    for m in messages.as_array().into_iter().flatten() {
                        errors.add(field.clone(), m.as_str().unwrap_or_default());
                    }
                }
            }
            if errors.is_empty() {
                errors.add("(body)", format!("the provider refused it: {message}"));
            }
            ApiError::validation(errors).with_cause(e)
        }
        AdapterError::Upstream { status: 409, .. } => {
            let existing = existing_contact(state, c, input, "phone").await;
            ApiError::conflict("the provider already holds this contact")
                .with_details(match existing {
                    Some(id) => json!({ "existing_contact_id": id, "field": "phone" }),
                    None => json!({ "field": "phone" }),
                })
                .with_cause(e)
        }
        AdapterError::NotFound => {
            ApiError::new(ErrorCode::NotFound, "contact not found at the provider").with_cause(e)
        }
        AdapterError::Timeout => ApiError::new(
            ErrorCode::UpstreamTimeout,
            "the provider did not answer in time; whether it wrote the contact is unknown (retry with the same Idempotency-Key: the contact is looked for before it is created again)",
        )
        .with_details(json!({ "outcome": "unknown" }))
        .with_cause(e),
        other => ApiError::from(other),
    }
}

/// 409 `suppressed` before anything is sent when the input's phone or email
/// is an erased person's (a create, or an update that would give a contact one).
async fn refuse_suppressed(
    state: &State,
    c: &Connection,
    input: &ContactInput,
) -> Result<(), ApiError> {
    let mut identifiers: Vec<(&'static str, String)> = Vec::new();
    if let Some(phone) = &input.phone {
        identifiers.push(("phone", phone.clone()));
    }
    if let Some(email) = &input.email {
        identifiers.push(("email", email.to_lowercase()));
    }
    if identifiers.is_empty() {
        return Ok(());
    }
    let (org, sealer) = (c.org_id.clone(), state.store.sealer().ok());
    let hits = state
        .store
        .run(move |conn| {
            let refs: Vec<(&str, &str)> =
                identifiers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            crate::store::suppressions::suppressed_identifiers(conn, sealer.as_deref(), &org, &refs)
        })
        .await?;
    if hits.is_empty() {
        Ok(())
    } else {
        Err(crate::store::StoreError::Suppressed.into())
    }
}

/// The connection's stored contact with the input's phone (or email).
async fn existing_contact(
    state: &State,
    c: &Connection,
    input: &ContactInput,
    field: &str,
) -> Option<String> {
    let value = match field {
        "phone" => input.phone.clone()?,
        _ => input.email.clone()?.to_lowercase(),
    };
    let (org, connection_id, field) = (c.org_id.clone(), c.id.clone(), field.to_string());
    state
        .store
        .run(move |conn| queries::find_by_key(conn, &org, &connection_id, &field, &value))
        .await
        .ok()
        .flatten()
}

/// Stores what the provider confirmed and drops the stale live-read copy here
/// and on every replica.
async fn confirmed(
    state: &State,
    c: &Connection,
    record: ContactRecord,
) -> Result<CanonicalContact, ApiError> {
    let remote_id = record.remote_id.clone();
    let cause = events::Cause::api_write(crate::telemetry::request_id());
    let row = store_record(&state.store, c, record, ids::now(), cause).await?;
    state
        .changed(Notice::Contact(c.id.clone(), remote_id))
        .await;
    Ok(queries::to_canonical(&row, false)?)
}

/// The org's stored contact and its connection; another org's is 404.
async fn stored(
    state: &State,
    org_id: &str,
    id: &str,
) -> Result<(ContactRow, Connection), ApiError> {
    let (org, cid) = (org_id.to_string(), id.to_string());
    let row = state
        .store
        .run(move |conn| queries::find_contact(conn, &org, &cid))
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    let c = connections::get_cached(state, org_id, &row.connection_id).await?;
    Ok((row, (*c).clone()))
}

/// Creates a contact at the org's connection's provider.
pub async fn create(
    state: &State,
    org_id: &str,
    connection_id: &str,
    body: &ContactWrite,
    options: WriteOptions,
) -> Result<CanonicalContact, ApiError> {
    let c = (*connections::get_cached(state, org_id, connection_id).await?).clone();
    if !c.provider.capabilities().supports(Operation::Create) {
        return Err(unsupported_operation(c.provider, Operation::Create));
    }
    let input = input_of(&c, Operation::Create, body)?;
    create_checked(state, &c, &input, options).await
}

async fn create_checked(
    state: &State,
    c: &Connection,
    input: &ContactInput,
    options: WriteOptions,
) -> Result<CanonicalContact, ApiError> {
    refuse_suppressed(state, c, input).await?;
    let (adapter, _) = state.providers.interactive(c)?;
    if options.look_first && c.provider == ProviderKind::Periskope {
        // The id is the phone: an earlier attempt that did write it is found.
        if let Some(phone) = &input.phone {
            match adapter.get_contact(phone).await {
                Ok(record) => return confirmed(state, c, record).await,
                Err(AdapterError::NotFound) => {}
                Err(e) => return Err(write_error(state, c, input, e).await),
            }
        }
    }
    match adapter.create_contact(input).await {
        Ok(record) => confirmed(state, c, record).await,
        Err(e) => Err(write_error(state, c, input, e).await),
    }
}

/// Changes the org's contact at its provider.
pub async fn update(
    state: &State,
    org_id: &str,
    id: &str,
    body: &ContactWrite,
) -> Result<CanonicalContact, ApiError> {
    let (row, c) = stored(state, org_id, id).await?;
    if !c.provider.capabilities().supports(Operation::Update) {
        return Err(unsupported_operation(c.provider, Operation::Update));
    }
    let input = input_of(&c, Operation::Update, body)?;
    refuse_suppressed(state, &c, &input).await?;
    let (adapter, _) = state.providers.interactive(&c)?;
    match adapter.update_contact(&row.remote_id, &input).await {
        Ok(record) => confirmed(state, &c, record).await,
        Err(e) => Err(write_error(state, &c, &input, e).await),
    }
}

/// Deletes the org's contact at its provider; the stored copy is marked deleted
/// upstream at once (also when the provider had lost it already: then 404).
pub async fn delete(state: &State, org_id: &str, id: &str) -> Result<ProviderKind, ApiError> {
    let (row, c) = stored(state, org_id, id).await?;
    if !c.provider.capabilities().supports(Operation::Delete) {
        return Err(unsupported_operation(c.provider, Operation::Delete));
    }
    let (adapter, _) = state.providers.interactive(&c)?;
    let outcome = adapter.delete_contact(&row.remote_id).await;
    match outcome {
        Ok(()) | Err(AdapterError::NotFound) => {
            mark_deleted(state, &c, &row).await?;
            match outcome {
                Ok(()) => Ok(c.provider),
                Err(e) => Err(ApiError::new(
                    ErrorCode::NotFound,
                    "the contact was already gone at the provider; it is marked deleted here",
                )
                .with_cause(e)),
            }
        }
        Err(e) => Err(write_error(state, &c, &ContactInput::default(), e).await),
    }
}

async fn mark_deleted(state: &State, c: &Connection, row: &ContactRow) -> Result<(), ApiError> {
    let id = row.id.clone();
    let cause = events::Cause::api_write(crate::telemetry::request_id());
    let scope = Scope::new(&c.org_id, cause).of_connection(&c.id);
    change::apply(&state.store, scope, move |change| change.mark_deleted(&id)).await?;
    state
        .changed(Notice::Contact(c.id.clone(), row.remote_id.clone()))
        .await;
    Ok(())
}

fn failed_item(index: usize, e: &ApiError) -> BatchItem {
    BatchItem {
        index,
        status: e.code.status().as_u16(),
        contact: None,
        error: Some(json!({
            "code": e.code.as_str(),
            "message": e.message,
            "details": e.details,
        })),
    }
}

fn summarise(provider: ProviderKind, mut results: Vec<BatchItem>) -> BatchResult {
    results.sort_by_key(|r| r.index);
    let created = results.iter().filter(|r| r.status < 300).count();
    BatchResult {
        provider,
        summary: BatchSummary {
            created,
            failed: results.len() - created,
        },
        results,
    }
}

/// Creates up to 100 contacts at the connection's provider: natively where it
/// has a batch (WA.cr), else one by one (each paced by the quota). Items are
/// answered one by one; one bad item fails alone.
pub async fn batch_create(
    state: &State,
    org_id: &str,
    connection_id: &str,
    items: &[ContactWrite],
) -> Result<BatchResult, ApiError> {
    let c = (*connections::get_cached(state, org_id, connection_id).await?).clone();
    let caps = c.provider.capabilities();
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(FieldErrors::single(
            "contacts",
            format!("must hold 1 to {MAX_BATCH} contacts"),
        ));
    }
    let native = caps.supports(Operation::BatchCreate);
    if !native && !caps.supports(Operation::Create) {
        return Err(unsupported_operation(c.provider, Operation::BatchCreate));
    }
    let op = if native {
        Operation::BatchCreate
    } else {
        Operation::Create
    };
    let mut results = Vec::new();
    let mut valid: Vec<(usize, ContactInput)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match input_of(&c, op, item) {
            Ok(input) => valid.push((index, input)),
            Err(e) => results.push(failed_item(index, &e)),
        }
    }
    if native && !valid.is_empty() {
        let (adapter, _) = state.providers.interactive(&c)?;
        let inputs: Vec<ContactInput> = valid.iter().map(|(_, i)| i.clone()).collect();
        match adapter.batch_create(&inputs).await {
            Ok(outcome) => {
                let failed: std::collections::HashMap<usize, String> =
                    outcome.failures.into_iter().collect();
                let mut created = outcome.created.into_iter();
                for (sent, (index, _)) in valid.iter().enumerate() {
                    if let Some(reason) = failed.get(&sent) {
                        let e = ApiError::validation({
                            let mut f = FieldErrors::new();
                            f.add("(contact)", format!("the provider refused it: {reason}"));
                            f
                        });
                        results.push(failed_item(*index, &e));
                        continue;
                    }
                    match created.next() {
                        Some(record) => match confirmed(state, &c, record).await {
                            Ok(contact) => results.push(BatchItem {
                                index: *index,
                                status: 201,
                                contact: Some(contact),
                                error: None,
                            }),
                            Err(e) => results.push(failed_item(*index, &e)),
                        },
                        None => results.push(failed_item(
                            *index,
                            &ApiError::new(
                                ErrorCode::UpstreamError,
                                "the provider's answer did not account for this contact",
                            ),
                        )),
                    }
                }
            }
            Err(e) => {
                let e = write_error(state, &c, &ContactInput::default(), e).await;
                for (index, _) in &valid {
                    results.push(failed_item(*index, &e));
                }
            }
        }
    } else {
        for (index, input) in &valid {
            match create_checked(state, &c, input, WriteOptions::default()).await {
                Ok(contact) => results.push(BatchItem {
                    index: *index,
                    status: 201,
                    contact: Some(contact),
                    error: None,
                }),
                Err(e) => results.push(failed_item(*index, &e)),
            }
        }
    }
    Ok(summarise(c.provider, results))
}

/// Deletes up to 100 of the connection's contacts (our ids) at its provider:
/// natively where it has a batch (WA.cr), else one by one.
pub async fn batch_delete(
    state: &State,
    org_id: &str,
    connection_id: &str,
    contact_ids: &[String],
) -> Result<BatchResult, ApiError> {
    let c = (*connections::get_cached(state, org_id, connection_id).await?).clone();
    let caps = c.provider.capabilities();
    if contact_ids.is_empty() || contact_ids.len() > MAX_BATCH {
        return Err(FieldErrors::single(
            "ids",
            format!("must hold 1 to {MAX_BATCH} contact ids"),
        ));
    }
    let native = caps.supports(Operation::BatchDelete);
    if !native && !caps.supports(Operation::Delete) {
        return Err(unsupported_operation(c.provider, Operation::BatchDelete));
    }
    let mut results = Vec::new();
    let mut found: Vec<(usize, ContactRow)> = Vec::new();
    for (index, id) in contact_ids.iter().enumerate() {
        let (org, cid) = (org_id.to_string(), id.clone());
        let row = state
            .store
            .run(move |conn| queries::find_contact(conn, &org, &cid))
            .await?
            .filter(|r| r.connection_id == c.id);
        match row {
            Some(row) => found.push((index, row)),
            None => results.push(failed_item(index, &ApiError::not_found("contact"))),
        }
    }
    let (adapter, _) = state.providers.interactive(&c)?;
    if native && !found.is_empty() {
        let remote: Vec<String> = found.iter().map(|(_, r)| r.remote_id.clone()).collect();
        match adapter.batch_delete(&remote).await {
            Ok(outcome) => {
                for (index, row) in &found {
                    // Which failed is not said: those the provider still has.
                    let gone = outcome.failed_count == 0
                        || matches!(
                            adapter.get_contact(&row.remote_id).await,
                            Err(AdapterError::NotFound)
                        );
                    if gone {
                        match mark_deleted(state, &c, row).await {
                            Ok(()) => results.push(BatchItem {
                                index: *index,
                                status: 204,
                                contact: None,
                                error: None,
                            }),
                            Err(e) => results.push(failed_item(*index, &e)),
                        }
                    } else {
                        results.push(failed_item(
                            *index,
                            &ApiError::new(
                                ErrorCode::UpstreamError,
                                "the provider did not delete this contact",
                            ),
                        ));
                    }
                }
            }
            Err(e) => {
                let e = write_error(state, &c, &ContactInput::default(), e).await;
                for (index, _) in &found {
                    results.push(failed_item(*index, &e));
                }
            }
        }
    } else {
        for (index, row) in &found {
            let outcome = adapter.delete_contact(&row.remote_id).await;
            let item = match outcome {
                Ok(()) | Err(AdapterError::NotFound) => match mark_deleted(state, &c, row).await {
                    Ok(()) => BatchItem {
                        index: *index,
                        status: 204,
                        contact: None,
                        error: None,
                    },
                    Err(e) => failed_item(*index, &e),
                },
                Err(e) => failed_item(
                    *index,
                    &write_error(state, &c, &ContactInput::default(), e).await,
                ),
            };
            results.push(item);
        }
    }
    Ok(summarise(c.provider, results))
}
