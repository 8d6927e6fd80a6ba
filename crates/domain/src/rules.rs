//! The rules live decisions are taken under (`docs/rules.md` documents every key).
//!
//! Every decision records `version`, so a replay shows which rules applied without consulting
//! today's file, and a replay never re-decides: the rules are read only by live decisions
//! ([`crate::step`] in live mode, [`crate::fire_timers`], [`crate::decide`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::exception::{ExceptionKind, Level, Owner};
use crate::ids::{Channel, Fen};
use crate::personal::is_mainland_mobile;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rules {
    /// Recorded in every decision taken under these rules.
    pub version: String,
    /// Orders whose total is strictly below this are approved without a person (seed: 500 CNY).
    pub auto_approve_below_fen: Fen,
    #[serde(default)]
    pub duplicate: DuplicateRule,
    #[serde(default, rename = "purchase-limit")]
    pub purchase_limits: Vec<PurchaseLimit>,
    #[serde(default)]
    pub phone: PhoneRules,
    #[serde(default)]
    pub address: AddressRules,
    #[serde(default)]
    pub payment_timeout: PaymentTimeout,
    #[serde(default)]
    pub routing: RoutingRules,
    #[serde(default)]
    pub sla: SlaRules,
    #[serde(default)]
    pub compensation: Compensation,
    #[serde(default)]
    pub review: ReviewRules,
    #[serde(default)]
    pub retry: RetryRules,
    #[serde(default)]
    pub alerts: AlertRules,
}

/// Same buyer, same items, placed within `window-secs` of each other: the later one is a
/// duplicate (the seed's post-mortem of double submission under load).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DuplicateRule {
    pub window_secs: u64,
}

impl Default for DuplicateRule {
    fn default() -> DuplicateRule {
        DuplicateRule { window_secs: 600 }
    }
}

/// At most `max-qty` units (of `sku`, or of any one sku when absent) per buyer within
/// `window-secs`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PurchaseLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub max_qty: u32,
    pub window_secs: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PhoneRules {
    /// Mainland mobile numbers (11 digits) whose orders go to risk.
    pub blacklist: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AddressRules {
    /// The street address needs at least this many characters to be deliverable.
    pub min_detail_chars: usize,
}

impl Default for AddressRules {
    fn default() -> AddressRules {
        AddressRules {
            min_detail_chars: 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PaymentTimeout {
    /// Unpaid this many minutes after it was placed, an order is cancelled.
    pub default_minutes: u32,
    /// Per channel overrides, e.g. `{ store = 10 }`.
    #[serde(default)]
    pub channels: BTreeMap<Channel, u32>,
}

impl Default for PaymentTimeout {
    fn default() -> PaymentTimeout {
        PaymentTimeout {
            default_minutes: 30,
            channels: BTreeMap::new(),
        }
    }
}

impl PaymentTimeout {
    pub fn minutes(&self, channel: Channel) -> u32 {
        self.channels
            .get(&channel)
            .copied()
            .unwrap_or(self.default_minutes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RoutingRules {
    /// Where an order goes when no rule matches.
    pub default_warehouse: String,
    /// Tried in order; the first whose categories and provinces both match wins.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RouteRule>,
}

impl Default for RoutingRules {
    fn default() -> RoutingRules {
        RoutingRules {
            default_warehouse: "WH-CENTRAL".to_string(),
            rules: Vec::new(),
        }
    }
}

/// An empty list matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteRule {
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub provinces: Vec<String>,
    pub warehouse: String,
}

impl RoutingRules {
    /// The warehouse for an order whose lines are in `categories`, shipping to `province`.
    /// A rule matches when one of its provinces is a prefix of the address province (so
    /// `广东` matches `广东省`) and every category of the order is in its list.
    pub fn warehouse_for<'a>(
        &self,
        categories: impl Iterator<Item = &'a str> + Clone,
        province: &str,
    ) -> &str {
        self.rules
            .iter()
            .find(|rule| {
                let province_ok = rule.provinces.is_empty()
                    || rule
                        .provinces
                        .iter()
                        .any(|p| province.starts_with(p.as_str()));
                let category_ok = rule.categories.is_empty()
                    || categories
                        .clone()
                        .all(|category| rule.categories.iter().any(|c| c == category));
                province_ok && category_ok
            })
            .map_or(self.default_warehouse.as_str(), |rule| {
                rule.warehouse.as_str()
            })
    }
}

/// How long an open exception may stay at a level before it escalates to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SlaRules {
    #[serde(default)]
    pub default: LevelSla,
    /// Per exception kind, e.g. `[sla.kind.blacklisted_phone]`.
    #[serde(default, rename = "kind")]
    pub kinds: BTreeMap<ExceptionKind, LevelSla>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LevelSla {
    /// Minutes at L1 (frontline) before it goes to L2 (supervisor).
    pub l1_minutes: u32,
    /// Minutes at L2 before it goes to L3 (risk committee).
    pub l2_minutes: u32,
}

impl Default for LevelSla {
    fn default() -> LevelSla {
        LevelSla {
            l1_minutes: 240,
            l2_minutes: 480,
        }
    }
}

impl SlaRules {
    /// Minutes an exception of `kind` may stay at `level`; `None` at the top level.
    pub fn minutes(&self, kind: ExceptionKind, level: Level) -> Option<u32> {
        let sla = self.kinds.get(&kind).unwrap_or(&self.default);
        match level {
            Level::L1 => Some(sla.l1_minutes),
            Level::L2 => Some(sla.l2_minutes),
            Level::L3 => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Compensation {
    /// Coupon for a customer who chooses a refund when stock ran out (seed: 10 CNY).
    pub out_of_stock_coupon_fen: Fen,
}

impl Default for Compensation {
    fn default() -> Compensation {
        Compensation {
            out_of_stock_coupon_fen: 1_000,
        }
    }
}

/// How long an order may wait for a person's review before the reviewers are alerted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReviewRules {
    /// Minutes `under_review` before `review_overdue` is raised (it then escalates like any
    /// exception, by `[sla]`).
    pub sla_minutes: u32,
}

impl Default for ReviewRules {
    fn default() -> ReviewRules {
        ReviewRules { sla_minutes: 120 }
    }
}

/// How a failed call to a channel is tried again (seed: at most 3 attempts, increasing
/// intervals). The interval before attempt `n + 1` is `first-interval-secs × multiplier^(n-1)`,
/// varied by up to `jitter-percent` either way by a hash of the call, so it is the same on
/// every replay and differs between calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetryRules {
    pub max_attempts: u32,
    pub first_interval_secs: u64,
    pub multiplier: u32,
    pub jitter_percent: u32,
}

impl Default for RetryRules {
    fn default() -> RetryRules {
        RetryRules {
            max_attempts: 3,
            first_interval_secs: 30,
            multiplier: 4,
            jitter_percent: 20,
        }
    }
}

/// Which group robots hear the alerts for which owner and level (names of robots configured in
/// `[notify.robot.<name>]` of the consumer config, where their URLs and secrets live).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AlertRules {
    /// Tried in order; every route that matches gets the alert.
    #[serde(default, rename = "route")]
    pub routes: Vec<AlertRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AlertRoute {
    /// The owner the alert is for; any owner when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// The levels it matches; every level when empty.
    #[serde(default)]
    pub levels: Vec<Level>,
    pub robots: Vec<String>,
}

impl AlertRules {
    /// The robots an alert for `owner` at `level` goes to, each once, in route order.
    pub fn robots_for(&self, owner: Owner, level: Level) -> Vec<&str> {
        let mut robots: Vec<&str> = Vec::new();
        for route in &self.routes {
            let owner_ok = route.owner.is_none_or(|wanted| wanted == owner);
            let level_ok = route.levels.is_empty() || route.levels.contains(&level);
            if owner_ok && level_ok {
                for robot in &route.robots {
                    if !robots.contains(&robot.as_str()) {
                        robots.push(robot);
                    }
                }
            }
        }
        robots
    }
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            version: "builtin-1".to_string(),
            auto_approve_below_fen: 50_000,
            duplicate: DuplicateRule::default(),
            purchase_limits: Vec::new(),
            phone: PhoneRules::default(),
            address: AddressRules::default(),
            payment_timeout: PaymentTimeout::default(),
            routing: RoutingRules::default(),
            sla: SlaRules::default(),
            compensation: Compensation::default(),
            review: ReviewRules::default(),
            retry: RetryRules::default(),
            alerts: AlertRules::default(),
        }
    }
}

/// A rules file that can't be used: names the key and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RulesError(pub String);

impl Rules {
    /// Parses and checks a rules file's text.
    pub fn from_toml(text: &str) -> Result<Rules, RulesError> {
        let deserializer = toml::Deserializer::new(text);
        let rules: Rules = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let message = inner.message().trim().to_string();
            if path.is_empty() || path == "." {
                // Not a key's value but the text: say where. The parser's own message is empty
                // for some syntax errors (a lone `\r`, a file cut after `key =`; found by fuzzing).
                let message = if message.is_empty() {
                    "not valid TOML".to_string()
                } else {
                    message
                };
                match inner.span().and_then(|span| text.get(..span.start)) {
                    Some(before) => {
                        let line = before.matches('\n').count() + 1;
                        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                        RulesError(format!("line {line}, column {column}: {message}"))
                    }
                    None => RulesError(message),
                }
            } else {
                RulesError(format!("{path}: {message}"))
            }
        })?;
        rules.check()?;
        Ok(rules)
    }

    /// The checks serde can't express.
    pub fn check(&self) -> Result<(), RulesError> {
        let fail = |message: String| Err(RulesError(message));
        if self.version.trim().is_empty() {
            return fail("version: must not be empty, every decision records it".into());
        }
        if self.duplicate.window_secs == 0 {
            return fail("duplicate.window-secs: expected a number of seconds above 0".into());
        }
        for (index, limit) in self.purchase_limits.iter().enumerate() {
            if limit.max_qty == 0 || limit.window_secs == 0 {
                return fail(format!(
                    "purchase-limit[{index}]: max-qty and window-secs must be above 0"
                ));
            }
        }
        for phone in &self.phone.blacklist {
            if !is_mainland_mobile(phone) {
                return fail(format!(
                    "phone.blacklist: {phone:?} is not an 11-digit mainland mobile number"
                ));
            }
        }
        if self.payment_timeout.default_minutes == 0
            || self.payment_timeout.channels.values().any(|m| *m == 0)
        {
            return fail("payment-timeout: minutes must be above 0".into());
        }
        if self.routing.default_warehouse.trim().is_empty()
            || self
                .routing
                .rules
                .iter()
                .any(|r| r.warehouse.trim().is_empty())
        {
            return fail("routing: every warehouse must be a non-empty name".into());
        }
        if self.review.sla_minutes == 0 {
            return fail("review.sla-minutes: expected minutes above 0".into());
        }
        let retry = &self.retry;
        if retry.max_attempts == 0 || retry.max_attempts > 20 {
            return fail("retry.max-attempts: expected 1 to 20 attempts".into());
        }
        if retry.first_interval_secs == 0 || retry.multiplier == 0 || retry.jitter_percent > 90 {
            return fail(
                "retry: first-interval-secs and multiplier must be above 0, jitter-percent at most 90"
                    .into(),
            );
        }
        for (index, route) in self.alerts.routes.iter().enumerate() {
            if route.robots.is_empty() || route.robots.iter().any(|r| r.trim().is_empty()) {
                return fail(format!(
                    "alerts.route[{index}].robots: name at least one robot, none empty"
                ));
            }
        }
        let slas = std::iter::once(&self.sla.default).chain(self.sla.kinds.values());
        for sla in slas {
            if sla.l1_minutes == 0 || sla.l2_minutes == 0 {
                return fail("sla: l1-minutes and l2-minutes must be above 0".into());
            }
        }
        Ok(())
    }
}
