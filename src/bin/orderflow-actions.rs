//! Intake consumer for `in.actions`: validates operator actions and customer choices (the
//! actor's role must fit the kind), dedupes them by `action_id` and appends them to the order
//! event log, where the order's fold decides what they change.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orderflow_runtime::app::consumer_main(orderflow_runtime::app::Role::Intake(
        orderflow_schema::InputTopic::Actions,
    ))
}
