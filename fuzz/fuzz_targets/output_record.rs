//! Any bytes as a record of each output topic (`orderflow_schema::output`): a value of a layout
//! this build reads, or an error; what it reads, it writes back the same.
#![no_main]

use std::fmt::Debug;

use orderflow_domain::{ExceptionChange, Notification, OrderSnapshot, RoutingInstruction};
use orderflow_schema::output::Versioned;
use serde::{de::DeserializeOwned, Serialize};

fn read<T: DeserializeOwned + Serialize + PartialEq + Debug>(payload: &[u8]) {
    if let Ok(record) = Versioned::<T>::from_json(payload) {
        let written = record
            .to_json()
            .expect("a record that was read writes back");
        assert_eq!(Versioned::<T>::from_json(&written).as_ref(), Ok(&record));
    }
}

libfuzzer_sys::fuzz_target!(|payload: &[u8]| {
    read::<OrderSnapshot>(payload); // order-state
    read::<ExceptionChange>(payload); // exceptions
    read::<Notification>(payload); // notifications
    read::<RoutingInstruction>(payload); // warehouse-routing
});
