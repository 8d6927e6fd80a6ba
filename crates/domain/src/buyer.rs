//! One buyer's recent orders (`buyer:{id}`): where checks across orders are decided.
//!
//! Orders of one buyer land on many partitions, but every buyer check request for a buyer
//! lands on the buyer's one partition, so the log puts them in one total order. The first
//! order of a basket within the window proceeds; every later one is a duplicate, however many
//! copies arrive at once. The parameters (window, limits, rule version) travel in the request,
//! decided by the order's screening, so this fold reads no rules and replays identically.

use serde::{Deserialize, Serialize};

use crate::effect::Effect;
use crate::event::{BuyerCheck, Event, EventBody, Finding, SkuQty};
use crate::exception::ExceptionKind;
use crate::ids::{EntityKey, EventId, OrderId, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerState {
    pub buyer_id: String,
    pub version: u64,
    /// Orders that passed the duplicate check, newest last, pruned past the longest window.
    pub recent: Vec<Claim>,
    /// Ids of the requests folded in: one per order the buyer ever placed. Left out of the
    /// serialized state, like [`crate::StockState::applied`].
    #[serde(skip)]
    pub applied: std::collections::BTreeSet<EventId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub order_id: OrderId,
    pub basket: String,
    pub placed_at: Timestamp,
    pub lines: Vec<SkuQty>,
}

impl BuyerState {
    pub fn new(buyer_id: String) -> BuyerState {
        BuyerState {
            buyer_id,
            version: 0,
            recent: Vec::new(),
            applied: Default::default(),
        }
    }

    /// Folds a buyer check request; `None` if a duplicate or not for this buyer.
    pub fn apply(&mut self, event: &Event) -> Option<Vec<Effect>> {
        let EventBody::BuyerCheckRequested(check) = &event.body else {
            return None;
        };
        if !matches!(&event.key, EntityKey::Buyer(buyer_id) if *buyer_id == self.buyer_id)
            || !self.applied.insert(event.event_id.clone())
        {
            return None;
        }
        self.version += 1;
        let findings = self.check(check);
        if !findings
            .iter()
            .any(|finding| finding.kind == ExceptionKind::DuplicateOrder)
        {
            self.recent.push(Claim {
                order_id: check.order_id.clone(),
                basket: check.basket.clone(),
                placed_at: check.placed_at,
                lines: check.lines.clone(),
            });
        }
        self.prune(check);
        let reply = Event::message(
            EntityKey::Order(check.order_id.clone()),
            event,
            EventBody::BuyerChecked { findings },
        );
        Some(vec![Effect::Append(reply)])
    }

    fn check(&self, check: &BuyerCheck) -> Vec<Finding> {
        let within = |claim: &Claim, window_secs: u64| {
            let apart = (claim.placed_at - check.placed_at)
                .num_seconds()
                .unsigned_abs();
            apart <= window_secs
        };
        let mut findings = Vec::new();
        if let Some(first) = self.recent.iter().find(|claim| {
            claim.order_id != check.order_id
                && claim.basket == check.basket
                && within(claim, check.duplicate_window_secs)
        }) {
            findings.push(Finding {
                kind: ExceptionKind::DuplicateOrder,
                code: "duplicate_order".into(),
                detail: format!(
                    "same buyer and basket as {} placed within {} s",
                    first.order_id, check.duplicate_window_secs
                ),
            });
            return findings;
        }
        for limit in &check.purchase_limits {
            let counts = |lines: &[SkuQty]| -> Vec<(String, u64)> {
                lines
                    .iter()
                    .filter(|line| limit.sku.as_ref().is_none_or(|sku| *sku == line.sku))
                    .map(|line| (line.sku.clone(), line.qty))
                    .collect()
            };
            for (sku, qty) in counts(&check.lines) {
                let earlier: u64 = self
                    .recent
                    .iter()
                    .filter(|claim| claim.order_id != check.order_id)
                    .filter(|claim| within(claim, limit.window_secs))
                    .flat_map(|claim| counts(&claim.lines))
                    .filter(|(claimed, _)| *claimed == sku)
                    .map(|(_, qty)| qty)
                    .fold(0, u64::saturating_add);
                if earlier.saturating_add(qty) > u64::from(limit.max_qty) {
                    findings.push(Finding {
                        kind: ExceptionKind::SuspectedFraud,
                        code: "purchase_limit_exceeded".into(),
                        detail: format!(
                            "{} × {sku} within {} s, limit {}",
                            earlier.saturating_add(qty),
                            limit.window_secs,
                            limit.max_qty
                        ),
                    });
                    return findings;
                }
            }
        }
        findings
    }

    /// Forgets orders too old to matter to any window of the newest request.
    fn prune(&mut self, check: &BuyerCheck) {
        let longest = check
            .purchase_limits
            .iter()
            .map(|limit| limit.window_secs)
            .chain([check.duplicate_window_secs])
            .max()
            .unwrap_or(0);
        let Some(newest) = self.recent.iter().map(|claim| claim.placed_at).max() else {
            return;
        };
        let longest = chrono::Duration::seconds(i64::try_from(longest).unwrap_or(i64::MAX));
        let horizon = newest.checked_sub_signed(longest).unwrap_or(newest);
        self.recent.retain(|claim| claim.placed_at >= horizon);
    }
}
