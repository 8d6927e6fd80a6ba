//! Intake screening of one order against the rules: address, phone, blacklist, invoice.
//! Checks across orders (duplicates, purchase limits) run on the buyer ([`crate::BuyerState`]).

use crate::event::{Address, Finding, Invoice, InvoiceKind, OrderPlaced};
use crate::exception::ExceptionKind;
use crate::personal::{is_mainland_mobile, mask_phone};
use crate::rules::Rules;

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

/// What is wrong with `order` under `rules`, one finding per exception code.
pub fn screen(order: &OrderPlaced, rules: &Rules) -> Vec<Finding> {
    [
        address_finding(&order.address, rules),
        phone_finding(&order.phone, rules),
        order.invoice.as_ref().and_then(invoice_finding),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Every problem with the address, in one finding: an operator fixes them together.
fn address_finding(address: &Address, rules: &Rules) -> Option<Finding> {
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
        // Not the value: exception details are kept as long as the log, and a whole address
        // sent as the province would be personal data there.
        problems.push("unknown province".to_string());
    }
    let detail_chars = address.detail.trim().chars().count();
    if detail_chars > 0 && detail_chars < rules.address.min_detail_chars {
        problems.push(format!(
            "street address has {detail_chars} characters, at least {} expected",
            rules.address.min_detail_chars
        ));
    }
    (!problems.is_empty()).then(|| Finding {
        kind: ExceptionKind::InvalidAddress,
        code: "address_invalid".into(),
        detail: problems.join("; "),
    })
}

fn phone_finding(phone: &str, rules: &Rules) -> Option<Finding> {
    if !is_mainland_mobile(phone) {
        Some(Finding {
            kind: ExceptionKind::InvalidPhone,
            code: "phone_invalid".into(),
            detail: format!("{} is not a mainland mobile number", mask_phone(phone)),
        })
    } else if rules.phone.blacklist.contains(phone) {
        Some(Finding {
            kind: ExceptionKind::BlacklistedPhone,
            code: "phone_blacklisted".into(),
            detail: format!("{} is on the blacklist", mask_phone(phone)),
        })
    } else {
        None
    }
}

fn invoice_finding(invoice: &Invoice) -> Option<Finding> {
    let tax_id_ok = invoice.tax_id.as_deref().is_some_and(|id| {
        matches!(id.len(), 15 | 18 | 20) && id.chars().all(|c| c.is_ascii_alphanumeric())
    });
    (invoice.kind == InvoiceKind::Company && !tax_id_ok).then(|| Finding {
        kind: ExceptionKind::InvoiceInvalid,
        code: "invoice_tax_id_invalid".into(),
        detail: "a company invoice needs a 15, 18 or 20 character tax id".into(),
    })
}
