//! WhatsApp ids and phone numbers (docs/providers.md §4–§5). A JID is classified by
//! its server before anything is parsed: LIDs, groups, broadcasts and newsletters
//! are never phones. Phones become E.164 with the `phonenumber` crate; a number
//! that fails validation is kept with `valid: false` and its raw text.

use phonenumber::{country, Mode};

use crate::canonical::Phone;

/// What kind of thing a JID names, by its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JidKind {
    /// `@c.us` (legacy), `@s.whatsapp.net`, `@hosted`.
    Phone,
    /// `@lid`, `@hosted.lid`.
    Lid,
    /// `@g.us`.
    Group,
    /// `@broadcast`, `@newsletter`, `@bot` and anything unknown.
    Other,
}

/// A JID split into its parts: `user[_agent][:device]@server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jid {
    pub user: String,
    pub server: String,
}

impl Jid {
    /// Splits a JID, dropping the `:device` and `_agent` parts (the "non-AD" form).
    pub fn parse(s: &str) -> Option<Jid> {
        let (user, server) = s.trim().rsplit_once('@')?;
        let user = user.split(':').next().unwrap_or("");
        let user = user.split('_').next().unwrap_or("");
        if user.is_empty() || server.is_empty() {
            return None;
        }
        Some(Jid {
            user: user.to_string(),
            server: server.to_ascii_lowercase(),
        })
    }

    pub fn kind(&self) -> JidKind {
        match self.server.as_str() {
            "c.us" | "s.whatsapp.net" | "hosted" => JidKind::Phone,
            "lid" | "hosted.lid" => JidKind::Lid,
            "g.us" => JidKind::Group,
            _ => JidKind::Other,
        }
    }
}

/// The canonical LID `<digits>@lid` from `205227043110953@lid`, `205227043110953:12@lid`
/// or bare digits. Anything else is `None`.
pub fn normalize_lid(s: &str) -> Option<String> {
    let s = s.trim();
    let user = if s.contains('@') {
        let jid = Jid::parse(s)?;
        if jid.kind() != JidKind::Lid {
            return None;
        }
        jid.user
    } else {
        s.to_string()
    };
    (!user.is_empty() && user.len() <= 20 && user.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{user}@lid"))
}

/// The E.164 form of a phone written any way people write one: a WhatsApp JID
/// (`919537851844@c.us`) or text with its country code (`+91 95378 51844`,
/// `919537851844`). `None` when it is neither.
pub fn e164_of_any(raw: &str) -> Option<String> {
    let parsed = if raw.contains('@') {
        phone_from_jid(raw)
    } else {
        Some(phone_from_text(raw, None))
    };
    parsed.and_then(|p| p.e164)
}

/// A phone from a WhatsApp JID; `None` unless the JID's server is a phone server.
pub fn phone_from_jid(jid: &str) -> Option<Phone> {
    let parsed = Jid::parse(jid)?;
    if parsed.kind() != JidKind::Phone || !parsed.user.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut phone = parse_international(&parsed.user, jid);
    phone.wa_jid = Some(format!("{}@s.whatsapp.net", parsed.user));
    Some(phone)
}

/// Whether `code` is an ISO 3166-1 alpha-2 region with telephone numbers (any
/// case): `IN`, `br`; not `XX` or `ZZ`, which are not assigned.
pub fn is_known_region(code: &str) -> bool {
    code.len() == 2 && code.to_ascii_uppercase().parse::<country::Id>().is_ok()
}

/// Every region `is_known_region` takes, upper case, sorted.
pub fn known_regions() -> Vec<String> {
    let letters = b'A'..=b'Z';
    letters
        .clone()
        .flat_map(|a| {
            letters
                .clone()
                .map(move |b| String::from_utf8(vec![a, b]).unwrap_or_default())
        })
        .filter(|code| is_known_region(code))
        .collect()
}

/// A phone from digits that are known to start with the country code
/// (Periskope ids, the Gateway's `phoneNumber`).
pub fn phone_from_digits(digits: &str) -> Phone {
    let only: String = digits.chars().filter(char::is_ascii_digit).collect();
    let mut phone = parse_international(&only, digits);
    if !only.is_empty() && only.len() == digits.trim().trim_start_matches('+').len() {
        phone.wa_jid = Some(format!("{only}@s.whatsapp.net"));
    }
    phone
}

/// A phone from free text (WA.cr's `phone`): `+` or `00` means international; bare
/// digits are tried as international first ("with country code" is documented),
/// then in the connection's default region.
pub fn phone_from_text(raw: &str, default_region: Option<&str>) -> Phone {
    let trimmed = raw.trim();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let explicit_international = trimmed.starts_with('+') || trimmed.starts_with("00");
    let international_digits = if trimmed.starts_with("00") {
        digits.trim_start_matches("00").to_string()
    } else {
        digits.clone()
    };
    let international = parse_international(&international_digits, raw);
    if explicit_international || international.valid {
        return international;
    }
    if let Some(region) = default_region.and_then(|r| r.parse::<country::Id>().ok()) {
        if let Ok(n) = phonenumber::parse(Some(region), trimmed) {
            let regional = phone_of(&n, raw);
            if regional.valid || international.e164.is_none() {
                return regional;
            }
        }
    }
    international
}

fn parse_international(digits: &str, raw: &str) -> Phone {
    match phonenumber::parse(None, format!("+{digits}")) {
        Ok(n) if !digits.is_empty() => phone_of(&n, raw),
        _ => Phone {
            e164: None,
            raw: raw.to_string(),
            valid: false,
            region: None,
            wa_jid: None,
            primary: true,
        },
    }
}

fn phone_of(n: &phonenumber::PhoneNumber, raw: &str) -> Phone {
    let valid = phonenumber::is_valid(n);
    Phone {
        e164: Some(n.format().mode(Mode::E164).to_string()),
        raw: raw.to_string(),
        valid,
        region: n.country().id().map(|id| id.as_ref().to_string()),
        wa_jid: None,
        primary: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_assigned_regions_are_known() {
        for code in ["IN", "BR", "us", "De", "GB"] {
            assert!(is_known_region(code), "{code}");
        }
        for code in ["XX", "ZZ", "UK", "I", "IND", "", "1N"] {
            assert!(!is_known_region(code), "{code}");
        }
    }

    /// docs/providers.md §5.2, row by row.
    #[test]
    fn the_phone_table_of_providers_md() {
        let rows: [(&str, Option<&str>, bool, Option<&str>); 11] = [
            ("919537851844@c.us", Some("+919537851844"), true, Some("IN")),
            (
                "6282123235653@c.us",
                Some("+6282123235653"),
                true,
                Some("ID"),
            ),
            ("447403688342@c.us", Some("+447403688342"), true, Some("GB")),
            (
                "6281234567890@s.whatsapp.net",
                Some("+6281234567890"),
                true,
                Some("ID"),
            ),
            (
                "6281234567890:12@s.whatsapp.net",
                Some("+6281234567890"),
                true,
                Some("ID"),
            ),
            (
                "14155550123@s.whatsapp.net",
                Some("+14155550123"),
                true,
                Some("US"),
            ),
            (
                "551187654321@s.whatsapp.net",
                Some("+551187654321"),
                false,
                Some("BR"),
            ),
            (
                "5511987654321@s.whatsapp.net",
                Some("+5511987654321"),
                true,
                Some("BR"),
            ),
            (
                "5215512345678@s.whatsapp.net",
                Some("+5215512345678"),
                false,
                Some("MX"),
            ),
            (
                "525512345678@s.whatsapp.net",
                Some("+525512345678"),
                true,
                Some("MX"),
            ),
            (
                "6281234567890_1:3@s.whatsapp.net",
                Some("+6281234567890"),
                true,
                Some("ID"),
            ),
        ];
        for (jid, e164, valid, region) in rows {
            let p = phone_from_jid(jid).unwrap_or_else(|| panic!("{jid} is a phone JID"));
            assert_eq!(p.e164.as_deref(), e164, "{jid}");
            assert_eq!(p.valid, valid, "{jid}");
            assert_eq!(p.region.as_deref(), region, "{jid}");
            assert_eq!(p.raw, jid, "raw is kept");
            assert!(p
                .wa_jid
                .as_deref()
                .is_some_and(|j| j.ends_with("@s.whatsapp.net")));
        }
        // Never parsed as phones.
        for jid in [
            "205227043110953@lid",
            "120363231636311517@g.us",
            "status@broadcast",
            "123@newsletter",
        ] {
            assert!(phone_from_jid(jid).is_none(), "{jid}");
        }
        // Free text.
        let p = phone_from_text("+91 98745 32456", None);
        assert_eq!(
            (p.e164.as_deref(), p.valid, p.region.as_deref()),
            (Some("+919874532456"), true, Some("IN"))
        );
        let p = phone_from_text("919537851844", None);
        assert_eq!(
            p.e164.as_deref(),
            Some("+919537851844"),
            "bare digits carry the country code"
        );
        assert!(p.valid);
    }

    #[test]
    fn free_text_falls_back_to_the_default_region_and_keeps_what_fails() {
        let p = phone_from_text("09537851844", Some("IN"));
        assert_eq!(p.e164.as_deref(), Some("+919537851844"));
        assert!(p.valid);
        let p = phone_from_text("0044 7403 688342", None);
        assert_eq!(p.e164.as_deref(), Some("+447403688342"));
        let p = phone_from_text("call reception", Some("GB"));
        assert_eq!(p.e164, None);
        assert!(!p.valid);
        assert_eq!(p.raw, "call reception");
        let p = phone_from_text("(415) 555-0123", Some("US"));
        assert_eq!(p.region.as_deref(), Some("US"));
        assert_eq!(p.e164.as_deref(), Some("+14155550123"));
    }

    #[test]
    fn lids_normalize_and_other_ids_do_not() {
        assert_eq!(
            normalize_lid("205227043110953@lid").as_deref(),
            Some("205227043110953@lid")
        );
        assert_eq!(
            normalize_lid("205227043110953:7@lid").as_deref(),
            Some("205227043110953@lid")
        );
        assert_eq!(
            normalize_lid("205227043110953").as_deref(),
            Some("205227043110953@lid")
        );
        assert_eq!(normalize_lid("919537851844@c.us"), None);
        assert_eq!(normalize_lid("abc@lid"), None);
    }
}
