//! Generates the Rust code for `logward.v1` with a vendored `protoc`, so a fresh
//! machine needs nothing but cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .bytes(".logward.v1.Event.message")
        .compile_with_config(config, &["proto/logward/v1/ingest.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
