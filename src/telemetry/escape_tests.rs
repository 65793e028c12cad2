//! The fast paths of the formatter against the slow ones: the escapers against character-by-
//! character references (the code they replaced), integers against `Display`, and whole lines
//! written in one pass, through the direct integer and string paths, against the same lines
//! written in two passes or through `Debug` and `Display`; access lines written directly
//! against the same lines written through `tracing`.

use std::fmt::Write as _;

use proptest::prelude::*;

use super::{
    LineFormat,
    access::{AccessCaller, AccessLine},
    escape::{Digits, Escaper, i64_text, is_bare, json_string, must_escape, text_value, u64_text},
    tests::{nasty_text, written},
};

/// Escapes `s` one character at a time, as the text escaper did before its fast path.
fn reference_escape(s: &str, quoted: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' if quoted => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if must_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// A text value as it was written before the fast paths.
fn reference_text_value(s: &str) -> String {
    let bare = !s.is_empty()
        && !s
            .chars()
            .any(|c| matches!(c, ' ' | '"' | '=') || must_escape(c));
    if bare {
        s.to_owned()
    } else {
        format!("\"{}\"", reference_escape(s, true))
    }
}

/// A JSON string literal as it was written before the fast path.
fn reference_json(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if must_escape(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What each fast path writes for `s`: plain and quoted escapes, text value, JSON string.
fn fast(s: &str) -> [String; 4] {
    let mut plain = String::new();
    Escaper::plain(&mut plain)
        .write_str(s)
        .expect("to a String");
    let mut quoted = String::new();
    Escaper::quoted(&mut quoted)
        .write_str(s)
        .expect("to a String");
    let mut value = String::new();
    text_value(&mut value, s).expect("to a String");
    let mut json = String::new();
    json_string(&mut json, s).expect("to a String");
    [plain, quoted, value, json]
}

fn reference(s: &str) -> [String; 4] {
    [
        reference_escape(s, false),
        reference_escape(s, true),
        reference_text_value(s),
        reference_json(s),
    ]
}

/// Text with every kind of character, plain ASCII runs often (the fast path's case).
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        nasty_text(),
        any::<String>(),
        "[ -~]{0,40}",
        ("[!-~]{0,20}", nasty_text(), "[ -~]{0,20}").prop_map(|(a, b, c)| a + &b + &c),
    ]
}

#[test]
fn the_fast_paths_write_what_the_references_write_on_the_edge_cases() {
    for s in [
        "",
        " ",
        "=",
        "\"",
        "\\",
        "a",
        "a b",
        "a=b",
        "say \"hi\"",
        "C:\\x",
        "é",
        "a\u{85}",
        "x\u{2028}",
        "\u{202e}",
        "tab\there",
        "\u{7f}",
        "~",
        "😀",
        "abc-1",
    ] {
        assert_eq!(fast(s), reference(s), "{s:?}");
    }
    assert!(is_bare("C:\\x") && is_bare("é") && !is_bare("") && !is_bare("é\u{85}"));
}

#[test]
fn integers_are_written_as_display_writes_them() {
    for v in [
        0,
        1,
        9,
        10,
        99,
        100,
        200,
        u64::from(u32::MAX),
        u64::MAX - 1,
        u64::MAX,
    ] {
        assert_eq!(u64_text(&mut Digits::default(), v), v.to_string());
    }
    for v in [0, 1, -1, -9, -10, 10, i64::MIN, i64::MIN + 1, i64::MAX] {
        assert_eq!(i64_text(&mut Digits::default(), v), v.to_string());
    }
}

/// The line after its timestamp.
fn after_timestamp(line: &str) -> &str {
    line.split_once(' ').expect("a timestamp first").1
}

/// Writes the same event twice: `direct` with integers, booleans and strings as such, and
/// `slow` with them through `Debug` and `Display` (strings only, in JSON); in a text line `slow`'s message comes last
/// in its field set, so it takes the two passes (JSON keeps the order fields come in). Both
/// lines after the timestamp.
fn both(format: LineFormat, s: &str, u: u64, i: i64, b: bool) -> (String, String) {
    let direct = written(format, false, || {
        tracing::warn!(s, u, i, b, id = s, "m {s}");
    });
    let slow = written(format, false, || match format {
        LineFormat::Text => {
            tracing::warn!(s = %s, u = ?u, i = %i, b = ?b, id = %s, message = %format_args!("m {s}"));
        }
        // JSON wrote integers and booleans through `Display` (compared above), never `Debug`.
        LineFormat::Json => tracing::warn!(s = %s, u, i, b, id = %s, "m {s}"),
    });
    (
        after_timestamp(&direct).to_owned(),
        after_timestamp(&slow).to_owned(),
    )
}

#[test]
fn extreme_integers_give_the_same_lines_directly_and_through_debug() {
    for (u, i) in [(0, 0), (u64::MAX, i64::MIN), (1, i64::MAX), (10, -1)] {
        for format in [LineFormat::Text, LineFormat::Json] {
            let (direct, slow) = both(format, "x", u, i, u % 2 == 0);
            assert_eq!(direct, slow);
        }
    }
}

#[test]
fn levels_are_padded_as_before() {
    let text = written(LineFormat::Text, false, || {
        tracing::error!("e");
        tracing::warn!("w");
        tracing::info!("i");
    });
    let levels: Vec<&str> = text.lines().map(|l| &l[27..34]).collect();
    assert_eq!(levels, [" ERROR ", "  WARN ", "  INFO "]);
    let coloured = written(LineFormat::Text, true, || tracing::warn!("w"));
    assert_eq!(&coloured[27..43], " \x1b[33m WARN\x1b[0m ");
    let json = written(LineFormat::Json, false, || tracing::warn!("w"));
    assert!(
        json.contains("\",\"level\":\"WARN\",\"target\":\""),
        "{json}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_fast_paths_write_what_the_references_write(s in any_text()) {
        prop_assert_eq!(fast(&s), reference(&s));
    }

    #[test]
    fn integers_match_display(u in any::<u64>(), i in any::<i64>()) {
        let (mut a, mut b) = (Digits::default(), Digits::default());
        prop_assert_eq!(u64_text(&mut a, u), u.to_string());
        prop_assert_eq!(i64_text(&mut b, i), i.to_string());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn one_pass_and_direct_values_give_the_lines_two_passes_and_display_gave(
        s in any_text(),
        u in any::<u64>(),
        i in any::<i64>(),
        b in any::<bool>(),
    ) {
        for format in [LineFormat::Text, LineFormat::Json] {
            let (direct, slow) = both(format, &s, u, i, b);
            prop_assert_eq!(direct, slow);
        }
    }
}

/// The access line written directly and through `tracing`, in `format`, without timestamps.
fn access_both(line: &AccessLine<'_>, format: LineFormat, ansi: bool) -> (String, String) {
    let strip = |written: &str| match format {
        LineFormat::Text => written[27..].to_owned(),
        LineFormat::Json => format!("{}{}", &written[..14], &written[41..]),
    };
    let mut direct = String::new();
    line.format(&mut direct, format, ansi);
    let traced = written(format, ansi, || line.emit());
    (strip(&direct), strip(&traced))
}

#[test]
fn access_lines_written_directly_are_the_lines_tracing_writes() {
    let caller = AccessCaller {
        tenant: "acme-pharma",
        user_id: -7,
        trace: "a b\"c\u{1b}",
    };
    let line = AccessLine {
        request_id: "0123456789abcdef-1f",
        method: "GET",
        path: "/api/v1/auth/whoami",
        status: 200,
        micros: 1234,
        caller: Some(caller),
    };
    for format in [LineFormat::Text, LineFormat::Json] {
        for ansi in [false, true] {
            for line in [
                line,
                AccessLine {
                    caller: None,
                    ..line
                },
            ] {
                let (direct, traced) = access_both(&line, format, ansi);
                assert_eq!(direct, traced, "{format:?}, ansi {ansi}");
            }
        }
    }
    let (direct, _) = access_both(&line, LineFormat::Text, false);
    assert_eq!(
        direct,
        "  INFO vigia::api: request request_id=0123456789abcdef-1f method=GET \
         path=/api/v1/auth/whoami status=200 micros=1234 tenant=acme-pharma user_id=-7 \
         trace=\"a b\\\"c\\u{1b}\"\n"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn access_lines_match_tracing_on_any_text(
        id in any_text(), path in any_text(), tenant in any_text(), trace in any_text(),
        status in any::<u16>(), micros in any::<u64>(), user_id in any::<i64>(),
        json in any::<bool>(), authenticated in any::<bool>(),
    ) {
        let line = AccessLine {
            request_id: &id,
            method: "POST",
            path: &path,
            status,
            micros,
            caller: authenticated.then_some(AccessCaller { tenant: &tenant, user_id, trace: &trace }),
        };
        let format = if json { LineFormat::Json } else { LineFormat::Text };
        let (direct, traced) = access_both(&line, format, false);
        prop_assert_eq!(direct, traced);
    }
}
