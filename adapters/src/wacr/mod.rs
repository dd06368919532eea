//! WA.cr APP API v2 (white-labelled; the base URL is per tenant). Endpoints covered:
//! `GET /contacts` (page/per_page ≤ 100), `GET/PATCH/DELETE /contacts/{id}`,
//! `POST /contacts`, `POST /contacts/batch`, `DELETE /contacts/batch`; reads always
//! ask `include=groups,source,status`. Rate limit: per API token, 60 requests a
//! minute by default (`rate_limit_per_minute`); headers and the 429 body are not
//! documented, so the Laravel defaults (`X-RateLimit-Limit/Remaining`, and on 429
//! `Retry-After` + `X-RateLimit-Reset`) are followed when sent.

pub mod client;
pub mod map;
pub mod wire;

use crate::capabilities::{Capabilities, Operation, WriteField};

/// Full CRUD and both batches (docs/providers.md §2.2-2.3); names are first and last
/// (no display name of their own), CRM lists are `groups`.
pub const CAPABILITIES: Capabilities = Capabilities {
    operations: &Operation::ALL,
    create_fields: WRITE_FIELDS,
    update_fields: WRITE_FIELDS,
};

const WRITE_FIELDS: &[WriteField] = &[
    WriteField::FirstName,
    WriteField::LastName,
    WriteField::Phone,
    WriteField::Email,
    WriteField::Company,
    WriteField::Kind,
    WriteField::Notes,
    WriteField::Address,
    WriteField::StatusId,
    WriteField::SourceId,
    WriteField::CrmListIds,
];

/// Laravel's throttle per token: `Limit/Remaining` on every reply, `Retry-After` and `Reset` on a 429; per minute by default (§2.1).
pub const RATE_STYLE: crate::quota::RateStyle = crate::quota::RateStyle::Laravel;
