//! Compiles `proto/` with protox (pure Rust), so no system `protoc` is needed: the input
//! contract (`orderflow.v1`) and the order event log's records (`orderflow.log.v1`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../../proto";
    let files = [
        "../../proto/orderflow/v1/input.proto",
        "../../proto/orderflow/log/v1/log.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, [proto_root])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
