//! Any text as a rules file (`Rules::from_toml`): rules that pass their checks, or an error
//! naming the key; accepted rules written back as TOML read back the same.
#![no_main]

use orderflow_domain::Rules;

libfuzzer_sys::fuzz_target!(|text: &str| {
    match Rules::from_toml(text) {
        Ok(rules) => {
            let written = toml::to_string(&rules).expect("accepted rules write back as TOML");
            assert_eq!(Rules::from_toml(&written), Ok(rules), "{written}");
        }
        Err(error) => assert!(!error.0.trim().is_empty()),
    }
});
