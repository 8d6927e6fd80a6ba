//! Intake consumer for `in.payments`: validates, normalises and dedupes records and appends them to
//! the order event log.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orderflow_runtime::app::consumer_main(orderflow_runtime::app::Role::Intake(
        orderflow_schema::InputTopic::Payments,
    ))
}
