//! WhatsApp Gateway (`rama-adi/quick-whatsapp-gateway`), read-only. Endpoints
//! covered: `GET /api/v1/sessions/{session}/contacts` (cursor, limit ≤ 200; thin
//! items) and `GET /api/v1/sessions/{session}/contacts/{lid}` (the detail: identity,
//! `dm`, groups with role and nickname). Rate limits: an edge limiter exists but is
//! off by default and sends no `X-RateLimit-*` headers, so the connection's own
//! `rate_limit_per_second` paces us; a 429 `rate_limited` is still honoured.

pub mod client;
pub mod map;
pub mod wire;

use crate::capabilities::{Capabilities, Operation};

/// Read-only: stored contacts can be listed and read, never written (§3.2).
pub const CAPABILITIES: Capabilities = Capabilities {
    operations: &[Operation::Get, Operation::List],
    create_fields: &[],
    update_fields: &[],
};

/// No rate-limit headers; its edge limiter is off by default (§3.5): the connection's own rate paces us.
pub const RATE_STYLE: crate::quota::RateStyle = crate::quota::RateStyle::Silent;
