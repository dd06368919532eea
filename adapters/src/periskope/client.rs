//! Periskope over HTTP. Remote ids are taken as people write them
//! (`919537851844`, `919537851844@c.us`, `+91 95378 51844`); paths get the digits.

use reqwest::header::{HeaderName, AUTHORIZATION};
use reqwest::Method;
use serde_json::json;

use crate::canonical::ContactRecord;
use crate::canonical::{clean, DIRECT_CHAT_FIELDS};
use crate::chats::{self, ChatPage};
use crate::connection_config::ConnectionConfig;
use crate::error::{
    self, from_value, map_items, parse_json, parse_typed, AdapterError, ErrorReport,
};
use crate::json_split::ArraySplitter;
use crate::paging::PageToken;
use crate::periskope::map::{chat_record, map_contact_value};
use crate::periskope::wire::{
    Chat, ChatListHead, ContactList, CreateContact, ErrorBody, UpdateContact,
};
use crate::phone::{Jid, JidKind};
use crate::provider::{ContactInput, ContactPage, Provider};
use crate::provider_kind::ProviderKind;
use crate::upstream::{body_error, Upstream, UpstreamRequest, UpstreamResponse, UpstreamStats};

/// The most `GET /contacts` returns per page.
pub const MAX_PAGE: u32 = 2000;
const X_PHONE: HeaderName = HeaderName::from_static("x-phone");

pub struct PeriskopeClient {
    upstream: Upstream,
    api_key: String,
    phone: String,
    page_size: u32,
    /// Whether a `count` below what a listing had read was logged already.
    odd_count_logged: std::sync::atomic::AtomicBool,
}

/// The digits Periskope's paths take, from any written form of a phone contact id.
pub fn contact_digits(remote_id: &str) -> Result<String, AdapterError> {
    let s = remote_id.trim();
    let user = if s.contains('@') {
        match Jid::parse(s) {
            Some(j) if j.kind() == JidKind::Phone => j.user,
            _ => {
                return Err(AdapterError::InvalidInput(format!(
                    "`{remote_id}` is not a Periskope contact id (a phone number or `…@c.us`)"
                )))
            }
        }
    } else {
        let only_phone_chars = s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
        if !only_phone_chars {
            return Err(AdapterError::InvalidInput(format!(
                "`{remote_id}` is not a Periskope contact id (a phone number or `…@c.us`)"
            )));
        }
        s.chars().filter(char::is_ascii_digit).collect()
    };
    if (6..=15).contains(&user.len()) && user.bytes().all(|b| b.is_ascii_digit()) {
        Ok(user)
    } else {
        Err(AdapterError::InvalidInput(format!(
            "`{remote_id}` is not a Periskope contact id (6 to 15 digits with country code)"
        )))
    }
}

/// Periskope's `x-phone`: country code and number as digits only (`+91 98745 32456`
/// → `919874532456`), or a `phone-…` id kept as it is. `None` for anything else.
pub fn x_phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if let Some(id) = raw.strip_prefix("phone-") {
        return (!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| raw.to_string());
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let only_separators = raw
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
    (only_separators && (7..=15).contains(&digits.len())).then_some(digits)
}

/// The offset a page token holds (0 for the first page).
fn page_offset(page: Option<&PageToken>) -> Result<u64, AdapterError> {
    match page {
        None => Ok(0),
        Some(t) => t
            .0
            .parse()
            .map_err(|_| AdapterError::InvalidInput(format!("bad Periskope page token `{}`", t.0))),
    }
}

/// Our field name for one of Periskope's (in its validation errors).
pub fn canonical_field(periskope: &str) -> &str {
    match periskope {
        "contact_id" => "phone",
        "contact_name" => "display_name",
        other => other,
    }
}

/// Periskope's error answer (`{code, message, fields}`) as an `AdapterError`.
pub fn classify(res: &UpstreamResponse) -> AdapterError {
    let body: ErrorBody = serde_json::from_slice(&res.body).unwrap_or_default();
    error::classify(
        res.status,
        &res.body,
        ErrorReport {
            code: body.code,
            message: body.message,
            fields: body.fields.unwrap_or(serde_json::Value::Null),
        },
    )
}

impl PeriskopeClient {
    pub fn new(config: ConnectionConfig) -> Result<Self, AdapterError> {
        let phone = config.phone.clone().ok_or_else(|| {
            AdapterError::InvalidInput("Periskope needs the connected phone (x-phone)".into())
        })?;
        Ok(Self {
            upstream: Upstream::new(
                "periskope",
                &config.base_url,
                config.upstream.clone(),
                config.quota(super::RATE_STYLE),
            )?,
            api_key: config.api_key,
            phone,
            page_size: MAX_PAGE,
            odd_count_logged: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Pages of `size` (1..=2000) instead of the maximum.
    pub fn with_page_size(mut self, size: u32) -> Self {
        self.page_size = size.clamp(1, MAX_PAGE);
        self
    }

    fn request(&self, mut req: UpstreamRequest) -> UpstreamRequest {
        req.headers
            .push((AUTHORIZATION, format!("Bearer {}", self.api_key)));
        req.headers.push((X_PHONE, self.phone.clone()));
        req
    }

    async fn call(&self, req: UpstreamRequest) -> Result<UpstreamResponse, AdapterError> {
        self.upstream.send_ok(&self.request(req), classify).await
    }

    /// The page after one of `n` items at `offset`: none only after a page
    /// shorter than the limit asked (or an empty one), whatever `count` says.
    /// The provider documents `count` as the total, but its own example
    /// (`count: 10, from: 1, to: 10`) reads as well as the page's length; taken
    /// for the total, a per-page count would end the listing after one page and
    /// the rest would look deleted. A `count` below what was read is logged once.
    fn next_page(&self, offset: u64, n: u64, count: Option<u64>) -> Option<PageToken> {
        use std::sync::atomic::Ordering;
        if let Some(count) = count.filter(|count| *count < offset + n) {
            if !self.odd_count_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    count,
                    read = offset + n,
                    "Periskope's list `count` is below the records read so far \
                     (a per-page count?); paging on until a short page"
                );
            }
        }
        (n > 0 && n >= u64::from(self.page_size)).then(|| PageToken((offset + n).to_string()))
    }

    /// Replaces the labels of every listed contact (`PATCH /contacts/labels`).
    pub async fn replace_labels(
        &self,
        remote_ids: &[String],
        labels: &[String],
    ) -> Result<(), AdapterError> {
        let ids = remote_ids
            .iter()
            .map(|id| contact_digits(id).map(|d| format!("{d}@c.us")))
            .collect::<Result<Vec<_>, _>>()?;
        let body = json!({"labels": labels.join(","), "contact_ids": ids});
        self.call(
            UpstreamRequest::with_body(Method::PATCH, "/contacts/labels", body)
                .idempotent(true)
                .operation("update_labels"),
        )
        .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for PeriskopeClient {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Periskope
    }

    fn stats(&self) -> UpstreamStats {
        self.upstream.stats()
    }

    /// The contact, and its 1-1 chat when `chat_ids` has one (assignee, custom
    /// properties, chat labels). The groups' names and roles are not read here
    /// (a call per group): the store keeps those the last sync listed.
    async fn get_contact(&self, remote_id: &str) -> Result<ContactRecord, AdapterError> {
        let digits = contact_digits(remote_id)?;
        let res = self
            .call(UpstreamRequest::get(format!("/contacts/{digits}")).operation("get_contact"))
            .await?;
        let mut record = map_contact_value(parse_json("Periskope contact", &res.body)?)?;
        match record.has_direct_chat {
            // No 1-1 chat: none of its fields.
            Some(false) => record.know(DIRECT_CHAT_FIELDS),
            Some(true) => match self.get_chat(&record.remote_id).await {
                Ok(Some(chat)) => chats::apply_direct(&mut record, &chat),
                // Gone since `chat_ids` was written: its fields stay as stored.
                Ok(None) => {}
                // The contact was read: it is answered, its chat fields left
                // unknown (the stored ones are kept) and the read marked partial.
                Err(e) => {
                    tracing::warn!(remote_id = %record.remote_id, error = %e, "Periskope chat read failed; answering the contact without it");
                    record.partial.push("chats");
                }
            },
            None => {}
        }
        Ok(record)
    }

    async fn list_contacts(&self, page: Option<&PageToken>) -> Result<ContactPage, AdapterError> {
        let offset = page_offset(page)?;
        // Always both: the default offset is documented as 0 and typed as 1.
        let req = UpstreamRequest::get("/contacts")
            .operation("list_contacts")
            .query("offset", offset)
            .query("limit", self.page_size);
        let res = self.call(req).await?;
        let list: ContactList = from_value(
            "Periskope contact list",
            parse_json("Periskope contact list", &res.body)?,
        )?;
        let n = list.contacts.len() as u64;
        let contacts = map_items("contacts", list.contacts, map_contact_value)?;
        let next = self.next_page(offset, n, list.count);
        Ok(ContactPage {
            contacts,
            next,
            items_are_partial: false,
        })
    }

    /// One chat (`GET /chats/{chat_id}`, the id with its `@c.us` or `@g.us`).
    async fn get_chat(&self, chat_id: &str) -> Result<Option<chats::ChatRecord>, AdapterError> {
        let res = match self
            .call(UpstreamRequest::get(format!("/chats/{chat_id}")).operation("get_chat"))
            .await
        {
            Ok(res) => res,
            Err(AdapterError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let chat: Chat = parse_typed("Periskope chat", &res.body)?;
        Ok(chat_record(chat))
    }

    /// `GET /chats?offset=&limit=`, paged like the contacts. A group listed
    /// without `members` (the SDK types them nullable) is handed back in
    /// `without_members` with its `updated_at` and `member_count` as its version:
    /// the caller reads it (`get_chat`) unless it holds its members at that version.
    async fn list_chats(&self, page: Option<&PageToken>) -> Result<Option<ChatPage>, AdapterError> {
        let offset = page_offset(page)?;
        let req = UpstreamRequest::get("/chats")
            .operation("list_chats")
            .query("offset", offset)
            .query("limit", self.page_size);
        let res = self
            .upstream
            .send_ok_streamed(&self.request(req), classify)
            .await?;
        let list = read_chat_list(res).await?;
        let n = list.listed;
        let (out, without_members) = (list.chats, list.without_members);
        let next = self.next_page(offset, n, list.count);
        // The first page's count tells every page's offset.
        let ahead = match (offset, &next, list.count) {
            (0, Some(_), Some(count)) => (2 * n..count)
                .step_by(n.max(1) as usize)
                .map(|at| PageToken(at.to_string()))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Some(ChatPage {
            chats: out,
            without_members,
            next,
            ahead,
        }))
    }

    async fn create_contact(&self, input: &ContactInput) -> Result<ContactRecord, AdapterError> {
        let phone = input.phone.as_deref().ok_or_else(|| {
            AdapterError::InvalidInput("Periskope needs `phone` to create a contact".into())
        })?;
        let name = input.full_name().ok_or_else(|| {
            AdapterError::InvalidInput("Periskope needs a name to create a contact".into())
        })?;
        let body = CreateContact {
            contact_id: contact_digits(phone)?,
            contact_name: name,
            is_internal: input.is_internal,
            labels: input.labels.as_ref().map(|l| l.join(",")),
        };
        let body = serde_json::to_value(body).map_err(|e| AdapterError::decode(e.to_string()))?;
        let res = self
            .call(
                UpstreamRequest::with_body(Method::POST, "/contacts/create", body)
                    .operation("create_contact"),
            )
            .await?;
        map_contact_value(parse_json("Periskope contact", &res.body)?)
    }

    async fn update_contact(
        &self,
        remote_id: &str,
        input: &ContactInput,
    ) -> Result<ContactRecord, AdapterError> {
        let digits = contact_digits(remote_id)?;
        let body = UpdateContact {
            contact_name: input.display_name.clone(),
            is_internal: input.is_internal,
            labels: input.labels.as_ref().map(|l| l.join(",")),
        };
        if body == UpdateContact::default() {
            return Err(AdapterError::InvalidInput(
                "Periskope updates only the name, is_internal and labels".into(),
            ));
        }
        let body = serde_json::to_value(body).map_err(|e| AdapterError::decode(e.to_string()))?;
        let res = self
            .call(
                UpstreamRequest::with_body(Method::PATCH, format!("/contacts/{digits}"), body)
                    .operation("update_contact")
                    .idempotent(true),
            )
            .await?;
        map_contact_value(parse_json("Periskope contact", &res.body)?)
    }
}

/// A chat page as read: its chats in canonical terms, the groups listed without
/// members, how many chats it listed, and the total.
#[derive(Default)]
struct ListedChats {
    chats: Vec<chats::ChatRecord>,
    without_members: Vec<chats::ListedGroup>,
    listed: u64,
    count: Option<u64>,
}

impl ListedChats {
    fn add(&mut self, chat: Chat) {
        self.listed += 1;
        let is_group = Jid::parse(&chat.chat_id).is_some_and(|j| j.kind() == JidKind::Group);
        if is_group && chat.members.is_none() {
            self.without_members.push(chats::ListedGroup {
                version: chat
                    .updated_at
                    .as_deref()
                    .map(|at| format!("{at}|{}", chat.member_count.unwrap_or(0))),
                name: clean(chat.chat_name.as_deref()),
                remote_id: chat.chat_id,
            });
        } else {
            self.chats.extend(chat_record(chat));
        }
    }
}

/// Reads a chat page as it arrives: each chat is parsed and mapped as soon as
/// its bytes are in, on a blocking thread, so neither the body (hundreds of MB
/// when every group carries all its members) nor its parse is held whole, and
/// no async worker parses it.
async fn read_chat_list(mut res: reqwest::Response) -> Result<ListedChats, AdapterError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
    let parse = tokio::task::spawn_blocking(move || -> Result<ListedChats, AdapterError> {
        let mut split = ArraySplitter::new("chats");
        let mut out = ListedChats::default();
        while let Some(chunk) = rx.blocking_recv() {
            split.push(&chunk, &mut |chat: &[u8]| -> Result<(), AdapterError> {
                out.add(parse_typed("Periskope chat list item", chat)?);
                Ok(())
            })?;
        }
        let rest = split
            .finish()
            .map_err(|e| AdapterError::decode(format!("Periskope chat list: {e}")))?;
        let head: ChatListHead = parse_typed("Periskope chat list", &rest)?;
        out.count = head.count;
        Ok(out)
    });
    let mut pumped = Ok(());
    loop {
        match res.chunk().await {
            Ok(Some(chunk)) => {
                // The parser stopped early: its error says why.
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                pumped = Err(body_error(&e));
                break;
            }
        }
    }
    drop(tx);
    let parsed = parse
        .await
        .map_err(|e| AdapterError::decode(format!("Periskope chat list: {e}")))?;
    // A body cut short is the transport's failure, not a parse error.
    pumped?;
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_phone_is_digits_or_a_phone_id() {
        assert_eq!(x_phone("+91 98745 32456").as_deref(), Some("919874532456"));
        assert_eq!(x_phone("phone-abc123").as_deref(), Some("phone-abc123"));
        assert_eq!(x_phone("12"), None);
        assert_eq!(x_phone("call me"), None);
        assert_eq!(x_phone("phone-"), None);
    }

    #[test]
    fn contact_ids_are_accepted_in_the_forms_people_write() {
        for id in [
            "919537851844",
            "919537851844@c.us",
            "+91 95378 51844",
            "919537851844:3@s.whatsapp.net",
        ] {
            assert_eq!(contact_digits(id).expect(id), "919537851844");
        }
        for id in [
            "205227043110953@lid",
            "120363231636311517@g.us",
            "abc",
            "12",
            "../etc",
        ] {
            assert!(contact_digits(id).is_err(), "{id}");
        }
    }
}
