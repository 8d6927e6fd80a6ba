//! The channel sync: tells each sales channel what happened to its orders (order-state → the
//! channels' endpoints), retries recorded as events in order-events.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orderflow_outbound::app::door_main(orderflow_outbound::app::Door::Sync)
}
