//! Personal data: what a valid phone number looks like (screening and the rules file both
//! check it), and how phone numbers and addresses may appear in logs and operator output:
//! enough to recognise, not to contact. `13800138000` → `138****8000`.

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
}
