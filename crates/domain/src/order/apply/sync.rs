//! The order's channel: the changes it must hear about, derived from the facts once each
//! (`reconcile_syncs`), and the attempts `orderflow-sync` recorded to tell it
//! (`record_sync`). Whether the channel never heard is an exception (`exceptions.rs`:
//! `sync_conditions`). Notifications sent for the order are kept in the log for the audit trail
//! and change nothing here.

use std::collections::BTreeMap;

use crate::effect::Effect;
use crate::event::{Event, EventBody};
use crate::order::state::{OrderState, Shipment};
use crate::order::status::Status;
use crate::sync::{ChannelSync, SyncAttempt, SyncChange};

impl OrderState {
    pub(super) fn record_sync(&mut self, event: &Event, effects: &mut Vec<Effect>) {
        match &event.body {
            EventBody::ChannelSyncAttempted(attempt) => {
                self.record_sync_attempt(event, attempt, effects)
            }
            // The trail is the log itself: `orderflow inspect` shows it.
            EventBody::NotificationDelivered(_) => {}
            // `apply` sends only sync events here.
            _ => {}
        }
    }

    /// An attempt counts once per number, on a change the order knows.
    fn record_sync_attempt(
        &mut self,
        event: &Event,
        attempt: &SyncAttempt,
        effects: &mut Vec<Effect>,
    ) {
        let Some(sync) = self
            .syncs
            .iter_mut()
            .find(|sync| sync.change_id == attempt.change_id)
        else {
            self.ignore(event, "the order has no such change to sync", effects);
            return;
        };
        if sync.attempts.iter().all(|a| a.attempt != attempt.attempt) {
            sync.attempts.push(attempt.clone());
            sync.attempts.sort_by_key(|a| a.attempt);
        }
    }

    /// Adds every change the facts now show that the channel hasn't been given yet. A change
    /// is never taken back: a channel told "cancelled" hears of a parcel shipped anyway next.
    pub(super) fn reconcile_syncs(&mut self, event: &Event) {
        for (change, change_id, details) in self.sync_changes() {
            if self.syncs.iter().any(|sync| sync.change_id == change_id) {
                continue;
            }
            self.syncs.push(ChannelSync {
                idempotency_key: ChannelSync::key_of(&self.order_id, &change_id),
                change_id,
                change,
                details,
                happened_at: event.occurred_at,
                cause: event.event_id.clone(),
                attempts: Vec::new(),
            });
        }
    }

    /// The changes the facts show now that the order doesn't know yet, in the order a channel
    /// would see them happen. Called after every event, when most changes are known: those
    /// are told apart by their id before anything is built for them.
    fn sync_changes(&self) -> Vec<(SyncChange, String, BTreeMap<String, String>)> {
        let known = |change_id: &str| self.syncs.iter().any(|sync| sync.change_id == change_id);
        // `{change}:{carrier}:{tracking_no}`, compared in place.
        let known_parcel = |change: SyncChange, shipment: &Shipment| {
            self.syncs.iter().any(|sync| {
                sync.change_id
                    .strip_prefix(change.as_str())
                    .and_then(|rest| rest.strip_prefix(':'))
                    .and_then(|rest| rest.strip_prefix(shipment.carrier.as_str()))
                    .and_then(|rest| rest.strip_prefix(':'))
                    == Some(shipment.tracking_no.as_str())
            })
        };
        let mut changes = Vec::new();
        let detail = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        };
        if self.all_parcels_accepted() && !known(SyncChange::AcceptedByWarehouse.as_str()) {
            let warehouses: Vec<&str> =
                self.accepted.iter().map(|a| a.warehouse.as_str()).collect();
            changes.push((
                SyncChange::AcceptedByWarehouse,
                SyncChange::AcceptedByWarehouse.as_str().to_string(),
                detail(&[("warehouses", &warehouses.join(","))]),
            ));
        }
        for shipment in &self.shipments {
            let shipped =
                shipment.dispatched_at.is_some() && !known_parcel(SyncChange::Shipped, shipment);
            let delivered =
                shipment.delivered_at.is_some() && !known_parcel(SyncChange::Delivered, shipment);
            if !shipped && !delivered {
                continue;
            }
            let parcel = format!("{}:{}", shipment.carrier, shipment.tracking_no);
            let mut details = detail(&[
                ("carrier", &shipment.carrier),
                ("tracking_no", &shipment.tracking_no),
            ]);
            // A parcel dispatched names its warehouse in both changes, whichever is new.
            if shipment.dispatched_at.is_some() {
                if let Some(warehouse) = &shipment.warehouse {
                    details.insert("warehouse".into(), warehouse.clone());
                }
            }
            if shipped {
                changes.push((
                    SyncChange::Shipped,
                    format!("shipped:{parcel}"),
                    details.clone(),
                ));
            }
            if delivered {
                changes.push((
                    SyncChange::Delivered,
                    format!("delivered:{parcel}"),
                    details,
                ));
            }
        }
        if self.status == Status::Cancelled && !known(SyncChange::Cancelled.as_str()) {
            let reason = self
                .cancelled
                .as_ref()
                .and_then(|c| c.reason.clone())
                .or_else(|| self.timed_out.map(|_| "payment timeout".to_string()))
                .unwrap_or_default();
            changes.push((
                SyncChange::Cancelled,
                SyncChange::Cancelled.as_str().to_string(),
                detail(&[("reason", &reason)]),
            ));
        }
        let refunded = self
            .refund_request
            .as_ref()
            .map(|r| r.amount_fen)
            .unwrap_or_else(|| self.refunded_fen());
        if refunded > 0 && !known(SyncChange::Refunded.as_str()) {
            changes.push((
                SyncChange::Refunded,
                SyncChange::Refunded.as_str().to_string(),
                detail(&[("amount_fen", &refunded.to_string())]),
            ));
        }
        changes
    }
}
