//! Intake screening of one order against the rules: address, phone, blacklist, invoice.
//! Checks across orders (duplicates, purchase limits) run on the buyer ([`crate::BuyerState`]).

use crate::event::{Finding, InvoiceKind, OrderPlaced};
use crate::{ExceptionKind, Rules};

/// Province-level divisions of mainland China, by the name an address starts with.
const PROVINCES: [&str; 34] = [
    "北京",
    "天津",
    "河北",
    "山西",
    "内蒙古",
    "辽宁",
    "吉林",
    "黑龙江",
    "上海",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "广西",
    "海南",
    "重庆",
    "四川",
    "贵州",
    "云南",
    "西藏",
    "陕西",
    "甘肃",
    "青海",
    "宁夏",
    "新疆",
    "台湾",
    "香港",
    "澳门",
];

/// `1[3-9]` followed by 9 digits: a mainland mobile number (after intake normalisation).
pub fn is_mainland_mobile(phone: &str) -> bool {
    let bytes = phone.as_bytes();
    bytes.len() == 11
        && bytes[0] == b'1'
        && (b'3'..=b'9').contains(&bytes[1])
        && bytes.iter().all(u8::is_ascii_digit)
}

/// What is wrong with `order` under `rules`, one finding per exception code.
pub fn screen(order: &OrderPlaced, rules: &Rules) -> Vec<Finding> {
    let mut findings = Vec::new();
    let address = &order.address;
    let missing: Vec<&str> = [
        ("province", &address.province),
        ("city", &address.city),
        ("district", &address.district),
        ("detail", &address.detail),
    ]
    .into_iter()
    .filter(|(_, value)| value.trim().is_empty())
    .map(|(name, _)| name)
    .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("missing {}", missing.join(", ")));
    }
    let province = address.province.trim();
    if !province.is_empty() && !PROVINCES.iter().any(|known| province.starts_with(known)) {
        problems.push(format!("unknown province {province:?}"));
    }
    let detail_chars = address.detail.trim().chars().count();
    if detail_chars > 0 && detail_chars < rules.address.min_detail_chars {
        problems.push(format!(
            "street address has {detail_chars} characters, at least {} expected",
            rules.address.min_detail_chars
        ));
    }
    if !problems.is_empty() {
        findings.push(Finding {
            kind: ExceptionKind::InvalidAddress,
            code: "address_invalid".into(),
            detail: problems.join("; "),
        });
    }
    if !is_mainland_mobile(&order.phone) {
        findings.push(Finding {
            kind: ExceptionKind::InvalidPhone,
            code: "phone_invalid".into(),
            detail: format!(
                "{} is not a mainland mobile number",
                crate::mask_phone(&order.phone)
            ),
        });
    } else if rules.phone.blacklist.contains(&order.phone) {
        findings.push(Finding {
            kind: ExceptionKind::BlacklistedPhone,
            code: "phone_blacklisted".into(),
            detail: format!("{} is on the blacklist", crate::mask_phone(&order.phone)),
        });
    }
    if let Some(invoice) = &order.invoice {
        let tax_id_ok = invoice.tax_id.as_deref().is_some_and(|id| {
            matches!(id.len(), 15 | 18 | 20) && id.chars().all(|c| c.is_ascii_alphanumeric())
        });
        if invoice.kind == InvoiceKind::Company && !tax_id_ok {
            findings.push(Finding {
                kind: ExceptionKind::InvoiceInvalid,
                code: "invoice_tax_id_invalid".into(),
                detail: "a company invoice needs a 15, 18 or 20 character tax id".into(),
            });
        }
    }
    findings
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
}
