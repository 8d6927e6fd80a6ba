//! Personal data: what a valid phone number looks like (screening and the rules file both
//! check it), and how phone numbers, addresses, buyer ids and invoice details may appear in
//! logs and operator output: enough to recognise, not to contact or identify.
//! `13800138000` → `138****8000`, `tb_8a41f2c07e` → `tb_****7e`,
//! `91330106MA27XK3F5B` → `91****5B`, `张伟` → `张***`.

/// `1[3-9]` followed by 9 digits: a mainland mobile number (after intake normalisation).
pub fn is_mainland_mobile(phone: &str) -> bool {
    let bytes = phone.as_bytes();
    bytes.len() == 11
        && bytes[0] == b'1'
        && (b'3'..=b'9').contains(&bytes[1])
        && bytes.iter().all(u8::is_ascii_digit)
}

/// Keeps the first 3 and last 4 digits of a phone number.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// Keeps the first two characters of a street address.
pub fn mask_detail(detail: &str) -> String {
    let head: String = detail.chars().take(2).collect();
    if detail.chars().count() <= 2 {
        "**".to_string()
    } else {
        format!("{head}****")
    }
}

/// Keeps the first 3 and last 2 characters of a buyer id (of at least 8; else none), so an
/// operator can tell buyers apart without holding the platform's id.
pub fn mask_buyer_id(buyer_id: &str) -> String {
    keep_ends(buyer_id, 3, 2)
}

/// Keeps the first 2 and last 2 characters of a taxpayer id (of at least 8; else none).
pub fn mask_tax_id(tax_id: &str) -> String {
    keep_ends(tax_id, 2, 2)
}

/// Keeps the first character of an invoice title: a person's name for a personal invoice.
pub fn mask_invoice_title(title: &str) -> String {
    match title.chars().next() {
        Some(first) => format!("{first}***"),
        None => String::new(),
    }
}

/// `head` and `tail` characters around `****`; only `****` for a text shorter than 8.
fn keep_ends(text: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 8 {
        return "****".to_string();
    }
    let first: String = chars[..head].iter().collect();
    let last: String = chars[chars.len() - tail..].iter().collect();
    format!("{first}****{last}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainland_mobiles() {
        assert!(is_mainland_mobile("13800138000"));
        assert!(is_mainland_mobile("19912345678"));
        assert!(!is_mainland_mobile("12800138000"));
        assert!(!is_mainland_mobile("1380013800"));
        assert!(!is_mainland_mobile("1380013800a"));
        assert!(!is_mainland_mobile("021-5555666"));
    }

    #[test]
    fn masks_phone_and_address() {
        assert_eq!(mask_phone("13800138000"), "138****8000");
        assert_eq!(mask_phone("123"), "***");
        assert_eq!(mask_detail("文三路 478 号"), "文三****");
        assert_eq!(mask_detail("x"), "**");
    }

    #[test]
    fn masks_buyer_ids_tax_ids_and_invoice_titles() {
        assert_eq!(mask_buyer_id("tb_8a41f2c07e"), "tb_****7e");
        assert_eq!(mask_buyer_id("buyer-zhang"), "buy****ng");
        assert_eq!(mask_buyer_id("b-1"), "****");
        assert_eq!(mask_buyer_id(""), "****");
        assert_eq!(mask_tax_id("91330106MA27XK3F5B"), "91****5B");
        assert_eq!(mask_tax_id("1234567"), "****");
        assert_eq!(mask_invoice_title("张伟"), "张***");
        assert_eq!(mask_invoice_title("杭州西湖龙井茶业有限公司"), "杭***");
        assert_eq!(mask_invoice_title(""), "");
        // Multi-byte characters are kept whole.
        assert_eq!(mask_buyer_id("买家一二三四五六"), "买家一****五六");
    }
}
