//! Fuzzes the rule and condition parsers and the compiler: any input must give a value or
//! an error, never a panic. Run with `cargo +nightly fuzz run rule_parser` from `fuzz/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logward_rules::{Engine, EngineConfig, condition, documents_from_str};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(docs) = documents_from_str(text) {
        let _ = Engine::new(&docs, &EngineConfig::default());
    }
    let names = ["sel".to_owned(), "sel2".to_owned(), "_x".to_owned()];
    let _ = condition::parse(text, &names);
});
