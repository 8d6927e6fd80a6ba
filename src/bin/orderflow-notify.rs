//! The notifier: alerts to DingTalk / WeCom group robots, customer messages by SMS
//! (notifications → robots and the SMS gateway), each sent once per id.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orderflow_outbound::app::door_main(orderflow_outbound::app::Door::Notify)
}
