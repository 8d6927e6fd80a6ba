//! Any text as a rules file: rules that pass their checks, or an error that names what is
//! wrong. Never a panic, never an empty message. (fuzz/fuzz_targets/rules.rs explores the same
//! property guided by coverage; the inputs it found are the regression tests here.)

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use orderflow_domain::Rules;
use proptest::prelude::*;

/// The example rules file of the repository, which sets every key.
const EXAMPLE: &str = include_str!("../../../deploy/rules/rules.toml");

fn parse(text: &str) -> Result<Rules, String> {
    Rules::from_toml(text).map_err(|error| {
        assert!(!error.0.trim().is_empty(), "an empty message for {text:?}");
        error.0
    })
}

#[test]
fn a_syntax_error_the_parser_says_nothing_about_is_refused_with_its_place() {
    // Found by fuzzing (fuzz/fuzz_targets/rules.rs): the TOML parser's error message is empty
    // for a lone `\r` and for a file cut after `key =`.
    assert_eq!(parse("\r").unwrap_err(), "line 1, column 1: not valid TOML");
    assert_eq!(
        parse("version = \"v2\"\nauto-approve-below-fen =").unwrap_err(),
        "line 2, column 25: not valid TOML"
    );
}

proptest! {
    #[test]
    fn any_text_is_rules_or_an_error_with_a_message(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn any_cut_of_the_example_is_rules_or_an_error_with_a_message(cut in 0..EXAMPLE.len()) {
        if let Some(prefix) = EXAMPLE.get(..cut) {
            let _ = parse(prefix);
        }
    }

    #[test]
    fn any_line_of_the_example_replaced_is_rules_or_an_error_with_a_message(
        line in 0..EXAMPLE.lines().count(),
        replacement in "[ -~\r\t]{0,40}",
    ) {
        let text: Vec<&str> = EXAMPLE
            .lines()
            .enumerate()
            .map(|(index, original)| if index == line { replacement.as_str() } else { original })
            .collect();
        let _ = parse(&text.join("\n"));
    }

    #[test]
    fn accepted_rules_read_back_as_written(cut in 0..EXAMPLE.len()) {
        if let Some(Ok(rules)) = EXAMPLE.get(..cut).map(parse) {
            let written = toml::to_string(&rules).unwrap();
            prop_assert_eq!(parse(&written), Ok(rules));
        }
    }
}
