//! Periskope (`https://api.periskope.app/v1`). Endpoints covered: `GET /contacts`
//! (offset/limit, limit ≤ 2000), `GET /contacts/{digits}`, `POST /contacts/create`,
//! `PATCH /contacts/{digits}`, `PATCH /contacts/labels`; no contact delete exists.
//! Every call carries `Authorization: Bearer <key>` and `x-phone: <digits>`.
//! Rate limits: `X-RateLimit-Limit/Remaining/Reset` (Reset in epoch seconds) on
//! every reply, 429 past the limit; the window size is not documented.

pub mod client;
pub mod map;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;
