//! Intake consumer for `in.payments`: validates, normalises and dedupes records and appends them to
//! the order event log.

fn main() -> std::process::ExitCode {
    orderflow_runtime::cli::consumer_main(orderflow_runtime::cli::Role::Intake(
        orderflow_schema::InputTopic::Payments,
    ))
}
