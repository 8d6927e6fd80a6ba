//! Fulfilment and the end of the order: routing to warehouses, a warehouse taking the order,
//! parcels dispatched, delivered and returned (in any order, one record per carrier and
//! tracking number), completion, and cancellation by the platform.

use crate::effect::{Effect, RoutingInstruction, ShipTo};
use crate::event::{Event, EventBody, Routing};
use crate::order::state::{Accepted, Cancellation, OrderState, Shipment};

impl OrderState {
    pub(super) fn record_shipment(&mut self, event: &Event, effects: &mut Vec<Effect>) {
        let at = event.occurred_at;
        match &event.body {
            EventBody::OrderRouted(routing) => self.record_routing(event, routing, effects),
            EventBody::WarehouseAccepted {
                warehouse,
                routing_id,
            } => self.accepted.push(Accepted {
                warehouse: warehouse.clone(),
                routing_id: routing_id.clone(),
                at,
            }),
            EventBody::ShipmentDispatched {
                carrier,
                tracking_no,
                warehouse,
            } => {
                let shipment = self.shipment(carrier, tracking_no);
                shipment.warehouse = Some(warehouse.clone());
                shipment.dispatched_at = Some(at);
            }
            EventBody::ShipmentDelivered {
                carrier,
                tracking_no,
            } => self.shipment(carrier, tracking_no).delivered_at = Some(at),
            EventBody::ShipmentReturned {
                carrier,
                tracking_no,
                warehouse,
                reason,
            } => {
                let shipment = self.shipment(carrier, tracking_no);
                shipment.returned_at = Some(at);
                shipment.return_warehouse = Some(warehouse.clone());
                shipment.return_reason = reason.clone();
            }
            EventBody::OrderCompleted => {
                self.completed_at.get_or_insert(at);
            }
            EventBody::OrderCancelled { reason } => {
                self.cancelled.get_or_insert_with(|| Cancellation {
                    reason: reason.clone(),
                    cancelled_at: at,
                });
            }
            // `apply` sends only fulfilment events here.
            _ => {}
        }
    }

    /// The first routing counts: one instruction per parcel to its warehouse.
    fn record_routing(&mut self, event: &Event, routing: &Routing, effects: &mut Vec<Effect>) {
        if self.routing.is_some() {
            return;
        }
        self.routing = Some(routing.clone());
        let Some(placed) = &self.placed else {
            return;
        };
        for parcel in &routing.parcels {
            effects.push(Effect::Route(RoutingInstruction {
                routing_id: parcel.routing_id.clone(),
                order_id: self.order_id.clone(),
                channel: self.order_id.channel(),
                warehouse: parcel.warehouse.clone(),
                lines: parcel.lines.clone(),
                ship_to: ShipTo {
                    phone: placed.order.phone.clone(),
                    address: placed.order.address.clone(),
                },
                rule_version: routing.rule_version.clone(),
                routed_at: event.occurred_at,
            }));
        }
    }

    /// The parcel with this carrier and tracking number, recorded on its first fact.
    fn shipment(&mut self, carrier: &str, tracking_no: &str) -> &mut Shipment {
        let index = match self
            .shipments
            .iter()
            .position(|s| s.carrier == carrier && s.tracking_no == tracking_no)
        {
            Some(index) => index,
            None => {
                self.shipments.push(Shipment {
                    carrier: carrier.to_string(),
                    tracking_no: tracking_no.to_string(),
                    warehouse: None,
                    dispatched_at: None,
                    delivered_at: None,
                    returned_at: None,
                    return_warehouse: None,
                    return_reason: None,
                });
                self.shipments.len() - 1
            }
        };
        &mut self.shipments[index]
    }
}
