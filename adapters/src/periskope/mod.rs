//! Periskope (`https://api.periskope.app/v1`). Endpoints covered: `GET /contacts`
//! (offset/limit, limit ≤ 2000), `GET /contacts/{digits}`, `POST /contacts/create`,
//! `PATCH /contacts/{digits}`, `PATCH /contacts/labels`; no contact delete exists;
//! `GET /chats` (offset/limit like the contacts) and `GET /chats/{chat_id}`, from
//! which memberships, the 1-1 chat, assignee, custom properties and chat labels come.
//! Every call carries `Authorization: Bearer <key>` and `x-phone: <digits>`.
//! Rate limits: `X-RateLimit-Limit/Remaining/Reset` (Reset in epoch seconds) on
//! every reply, 429 past the limit; the window size is not documented.

pub mod client;
pub mod map;
pub mod wire;

use crate::capabilities::{Capabilities, Operation, WriteField};

/// No delete exists; update takes only the name, `is_internal` and labels
/// (docs/providers.md §1.2); create needs the phone and a name (first and last joined).
pub const CAPABILITIES: Capabilities = Capabilities {
    operations: &[
        Operation::Get,
        Operation::List,
        Operation::Create,
        Operation::Update,
    ],
    create_fields: &[
        WriteField::DisplayName,
        WriteField::FirstName,
        WriteField::LastName,
        WriteField::Phone,
        WriteField::IsInternal,
        WriteField::Labels,
    ],
    update_fields: &[
        WriteField::DisplayName,
        WriteField::IsInternal,
        WriteField::Labels,
    ],
};

/// `X-RateLimit-Limit/Remaining/Reset` (Reset in epoch seconds) on every reply (docs/providers.md §1.6).
pub const RATE_STYLE: crate::quota::RateStyle = crate::quota::RateStyle::Reset;
