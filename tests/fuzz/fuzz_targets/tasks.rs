//! The SQS task bodies (fan-out and delivery tasks): never panic; what
//! parses serializes and parses back to the same task.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::{DeliveryTask, FanoutTask};

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = serde_json::from_slice::<FanoutTask>(data) {
        let json = serde_json::to_vec(&t).expect("a parsed fan-out task serializes");
        assert_eq!(serde_json::from_slice::<FanoutTask>(&json).expect("and parses back"), t);
    }
    if let Ok(t) = serde_json::from_slice::<DeliveryTask>(data) {
        let json = serde_json::to_vec(&t).expect("a parsed delivery task serializes");
        assert!(serde_json::from_slice::<DeliveryTask>(&json).expect("and parses back") == t);
    }
});
