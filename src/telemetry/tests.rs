//! Unit tests of the log formatter and the batched writer.

use std::{
    io::{self, Write},
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{BatchWriter, LineFormat, must_escape, writer::lock};

/// A sink the test can read back.
#[derive(Clone, Default)]
struct CapturedOutput(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn lines_arrive_in_order_without_loss_and_the_guard_writes_the_rest() {
    let sink = CapturedOutput::default();
    let (writer, guard) = BatchWriter::spawn(Box::new(sink.clone()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let mut w = writer.clone();
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    w.write_all(format!("{t} {i}\n").as_bytes())
                        .expect("written");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    drop(guard);
    let text = String::from_utf8(lock(&sink.0).clone()).expect("UTF-8");
    let mut next = [0usize; 4];
    for line in text.lines() {
        let (t, i) = line.split_once(' ').expect("two numbers");
        let (t, i): (usize, usize) = (t.parse().expect("thread"), i.parse().expect("index"));
        assert_eq!(i, next[t], "thread {t}'s lines out of order or lost");
        next[t] += 1;
    }
    assert_eq!(next, [5_000; 4]);
}

/// The lines `format` writes for one event with a message and fields of every kind.
fn one_line(format: LineFormat) -> String {
    written(format, false, || {
        let absent: Option<&str> = None;
        tracing::info!(
            request_id = %"abc-1",
            path = "/api/v1/auth/whoami",
            quoted = "say \"hi\"\n\tnow\u{1}",
            status = 200u16,
            delta = -3i64,
            ok = true,
            ratio = 0.5f64,
            broken = f64::NAN,
            absent,
            "request {}",
            7
        );
    })
}

/// What `format` writes for the events `emit` makes; `ansi` as at a terminal.
pub(super) fn written(format: LineFormat, ansi: bool, emit: impl FnOnce()) -> String {
    let sink = CapturedOutput::default();
    let writer = {
        let sink = sink.clone();
        move || sink.clone()
    };
    let subscriber = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(ansi)
        .event_format(format)
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    String::from_utf8(lock(&sink.0).clone()).expect("UTF-8")
}

#[test]
fn json_lines_are_json_with_every_field_flattened() {
    let line = one_line(LineFormat::Json);
    assert!(line.ends_with("}\n") && line.lines().count() == 1, "{line}");
    let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(value["level"], "INFO");
    assert_eq!(value["target"], module_path!());
    assert_eq!(value["message"], "request 7");
    assert_eq!(value["request_id"], "abc-1");
    assert_eq!(value["path"], "/api/v1/auth/whoami");
    assert_eq!(value["quoted"], "say \"hi\"\n\tnow\u{1}");
    assert_eq!(value["status"], 200);
    assert_eq!(value["delta"], -3);
    assert_eq!(value["ok"], true);
    assert_eq!(value["ratio"], 0.5);
    assert_eq!(value["broken"], "NaN");
    assert!(value.get("absent").is_none(), "None fields are left out");
    let stamp = value["timestamp"].as_str().expect("timestamp");
    assert!(
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).is_ok()
            && stamp.len() == 27
            && stamp.ends_with('Z'),
        "{stamp}"
    );
}

#[test]
fn text_lines_put_the_message_first_and_quote_what_needs_it() {
    let line = one_line(LineFormat::Text);
    let (stamp, rest) = line.split_once(' ').expect("timestamp first");
    assert_eq!(stamp.len(), 27, "{line}");
    assert_eq!(
        rest,
        format!(
            " INFO {}: request 7 request_id=abc-1 path=/api/v1/auth/whoami \
             quoted=\"say \\\"hi\\\"\\n\\tnow\\u{{1}}\" status=200 delta=-3 ok=true ratio=0.5 \
             broken=NaN\n",
            module_path!()
        )
    );
}

#[test]
fn a_guard_dropped_at_once_never_hangs_and_first_lines_are_never_stranded() {
    // Start and stop at once (as `serve` does when its configuration is refused), or write
    // one line right after starting: every wake-up must reach the log thread. Several
    // threads at it make the scheduler interleave them as a loaded machine does.
    let (done, finished) = std::sync::mpsc::channel();
    for t in 0..4 {
        let done = done.clone();
        std::thread::spawn(move || {
            for i in 0..1_050 {
                let sink = CapturedOutput::default();
                let (mut writer, guard) = BatchWriter::spawn(Box::new(sink.clone()));
                if i >= 1_000 {
                    writer.write_all(b"first\n").expect("written");
                    let deadline = std::time::Instant::now() + Duration::from_secs(5);
                    while lock(&sink.0).is_empty() {
                        if std::time::Instant::now() > deadline {
                            let _ = done.send(Err(format!("{t}/{i}: a first line stranded")));
                            return;
                        }
                        std::thread::yield_now();
                    }
                }
                drop(guard);
            }
            let _ = done.send(Ok(()));
        });
    }
    for _ in 0..4 {
        match finished.recv_timeout(Duration::from_secs(30)) {
            Ok(outcome) => outcome.expect("every line written"),
            Err(_) => panic!("dropping a fresh guard hung"),
        }
    }
}

#[test]
fn a_line_is_written_soon_without_further_lines() {
    let sink = CapturedOutput::default();
    let (mut writer, _guard) = BatchWriter::spawn(Box::new(sink.clone()));
    writer.write_all(b"alone\n").expect("written");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lock(&sink.0).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "a lone line was never flushed"
        );
        std::thread::yield_now();
    }
    assert_eq!(&*lock(&sink.0), b"alone\n");
}

/// Characters a log line must never carry raw, with characters that need quoting or
/// escaping in a value, and some letters.
pub(super) fn nasty_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let special = prop::sample::select(vec![
        '\0', '\n', '\r', '\t', '\x0b', '\x0c', '\x07', '\x08', '\x1b', '\x7f', '\u{80}', '\u{85}',
        '\u{9b}', '\u{9f}', '\u{2028}', '\u{2029}', '\u{61c}', '\u{200e}', '\u{202a}', '\u{202e}',
        '\u{2066}', '\u{2069}', '"', '\\', '=', ' ', '{', '}', 'u', 'é', '€', '😀',
    ]);
    let c = prop_oneof![3 => any::<char>(), 3 => special, 2 => prop::char::range('a', 'z')];
    prop::collection::vec(c, 0..32).prop_map(String::from_iter)
}

/// The line is one line, and nothing in it is a raw control character.
fn assert_one_clean_line(line: &str) {
    assert!(line.ends_with('\n'), "{line:?}");
    let body = &line[..line.len() - 1];
    assert!(!body.contains('\n'), "more than one line: {line:?}");
    assert!(
        !body.chars().any(must_escape),
        "a raw control character: {line:?}"
    );
}

/// Reads one escaped text unit from the start of `s`: up to the closing `"` when `quoted`,
/// else to the end. The text and what follows it.
fn unescape(s: &str, quoted: bool) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' if quoted => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '\\' => out.push('\\'),
                '"' if quoted => out.push('"'),
                'u' => {
                    if chars.next()?.1 != '{' {
                        return None;
                    }
                    let mut hex = String::new();
                    loop {
                        match chars.next()?.1 {
                            '}' => break,
                            h => hex.push(h),
                        }
                    }
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
    (!quoted).then_some((out, ""))
}

/// The ` key=value` fields of a text line after its message, values unescaped.
fn text_fields(mut rest: &str) -> Option<Vec<(String, String)>> {
    let mut fields = Vec::new();
    rest = rest.strip_suffix('\n')?;
    while !rest.is_empty() {
        let (key, after) = rest.strip_prefix(' ')?.split_once('=')?;
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => unescape(quoted, true)?,
            None => {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_owned(), &after[end..])
            }
        };
        fields.push((key.to_owned(), value));
        rest = next;
    }
    Some(fields)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn text_values_are_one_clean_line_and_read_back_exactly(value in nasty_text()) {
        let line = written(LineFormat::Text, false, || {
            tracing::warn!(v = value.as_str(), d = %value, n = 1, "m");
        });
        assert_one_clean_line(&line);
        let (_, rest) = line.split_once(": m").expect("the message");
        let fields = text_fields(rest).expect("well-formed fields");
        let expected = [("v", value.as_str()), ("d", value.as_str()), ("n", "1")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        proptest::prop_assert_eq!(fields, expected.to_vec(), "{:?}", line);
    }

    #[test]
    fn text_messages_are_one_clean_line_and_read_back_exactly(message in nasty_text()) {
        let line = written(LineFormat::Text, false, || tracing::warn!("{message}"));
        assert_one_clean_line(&line);
        let (_, rest) = line.split_once(": ").expect("the target");
        let (read, _) = unescape(rest.strip_suffix('\n').expect("newline"), false)
            .expect("well-formed message");
        proptest::prop_assert_eq!(read, message, "{:?}", line);
    }

    #[test]
    fn json_lines_are_one_clean_line_and_parse_back_exactly(
        message in nasty_text(),
        value in nasty_text(),
    ) {
        let line = written(LineFormat::Json, false, || {
            tracing::warn!(v = value.as_str(), d = %value, "{message}");
        });
        assert_one_clean_line(&line);
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        proptest::prop_assert_eq!(&parsed["message"], &serde_json::json!(message));
        proptest::prop_assert_eq!(&parsed["v"], &serde_json::json!(value));
        proptest::prop_assert_eq!(&parsed["d"], &serde_json::json!(value));
    }
}

/// An event whose target, field name, value and message hold control characters.
fn forged() {
    tracing::event!(target: "t\x1b[2J", tracing::Level::ERROR, "na\rme" = "v\u{202e}", "m\u{2028}");
}

#[test]
fn targets_and_field_names_are_escaped_too_and_only_the_level_is_coloured() {
    let text = written(LineFormat::Text, true, forged);
    assert!(
        text.ends_with(" \x1b[31mERROR\x1b[0m t\\u{1b}[2J: m\\u{2028} na\\rme=\"v\\u{202e}\"\n"),
        "{text:?}"
    );
    assert_one_clean_line(&text.replace("\x1b[31m", "").replace("\x1b[0m", ""));
    let json = written(LineFormat::Json, true, forged);
    assert_one_clean_line(&json);
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(parsed["target"], "t\x1b[2J");
    assert_eq!(parsed["na\rme"], "v\u{202e}");
    assert!(json.contains(r#""message":"m\u2028""#), "{json}");
}
