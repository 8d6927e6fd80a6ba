//! Operator actions on exceptions (resolve, assign) and the escalation of an exception nobody
//! handled within its SLA. An action on an exception that isn't open is kept in the trail and
//! its actor is told. Review verdicts are in `placement.rs`, customer choices in `stock.rs`.

use crate::effect::{Audience, Effect};
use crate::event::{Action, Event, EventBody};
use crate::exception::{ExceptionAction, ExceptionRecord, Level, Resolution};
use crate::ids::EventId;
use crate::order::state::OrderState;

impl OrderState {
    pub(super) fn record_action(&mut self, event: &Event, effects: &mut Vec<Effect>) {
        match &event.body {
            EventBody::ExceptionResolved {
                action,
                exception_id,
            } => self.resolve(event, action, exception_id, effects),
            EventBody::ExceptionAssigned {
                exception_id,
                assignee,
                ..
            } => self.assign(event, exception_id, assignee, effects),
            EventBody::ExceptionEscalated {
                exception_id, to, ..
            } => self.escalate(event, exception_id, *to, effects),
            // `apply` sends only exception actions here.
            _ => {}
        }
    }

    fn open_exception_mut(&mut self, exception_id: &EventId) -> Option<&mut ExceptionRecord> {
        self.exceptions
            .iter_mut()
            .find(|e| e.exception_id == *exception_id && e.is_open())
    }

    fn resolve(
        &mut self,
        event: &Event,
        action: &Action,
        exception_id: &EventId,
        effects: &mut Vec<Effect>,
    ) {
        let Some(record) = self.open_exception_mut(exception_id) else {
            self.ignore(event, "no open exception has this id", effects);
            return;
        };
        record.resolution = Some(Resolution {
            resolved_at: event.occurred_at,
            resolved_by: event.event_id.clone(),
            note: action.note.clone().unwrap_or_default(),
            actor: Some(action.actor.clone()),
        });
        let record = record.clone();
        effects.push(Effect::Exception(
            self.change(ExceptionAction::Resolved, &record),
        ));
    }

    fn assign(
        &mut self,
        event: &Event,
        exception_id: &EventId,
        assignee: &str,
        effects: &mut Vec<Effect>,
    ) {
        let Some(record) = self.open_exception_mut(exception_id) else {
            self.ignore(event, "no open exception has this id", effects);
            return;
        };
        record.assignee = Some(assignee.to_string());
        let record = record.clone();
        effects.push(Effect::Exception(
            self.change(ExceptionAction::Assigned, &record),
        ));
    }

    /// Moves an open exception up to `to` and alerts its owner there; an exception already at
    /// `to` or above (escalated before, or resolved) stays as it is.
    fn escalate(
        &mut self,
        event: &Event,
        exception_id: &EventId,
        to: Level,
        effects: &mut Vec<Effect>,
    ) {
        let Some(record) = self.open_exception_mut(exception_id) else {
            return;
        };
        if record.level >= to {
            return;
        }
        record.level = to;
        record.level_since = event.occurred_at;
        let record = record.clone();
        effects.push(Effect::Exception(
            self.change(ExceptionAction::Escalated, &record),
        ));
        let audience = Audience::Owner {
            owner: record.owner,
            level: record.level,
        };
        let message = format!(
            "{} ({}) not handled in time, now at {}",
            record.kind.as_str(),
            record.code,
            record.level.as_str()
        );
        let notice = self.notification(event, "exception_escalated", audience, message);
        effects.push(Effect::Notify(notice));
    }
}
