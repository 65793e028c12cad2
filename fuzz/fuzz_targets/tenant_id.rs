//! `TenantId::parse` must never panic, and whatever it accepts must be a lowercase DNS label
//! equal to the input: 1..=63 bytes of `a-z`, `0-9`, `-`, not starting or ending with `-`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigia::domain::TenantId;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = TenantId::parse(raw) {
        let s = id.as_str();
        assert_eq!(s, raw, "parsed id differs from the input");
        assert!(
            (1..=63).contains(&s.len()),
            "accepted id of {} bytes: {s:?}",
            s.len()
        );
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "accepted id with a byte outside [a-z0-9-]: {s:?}"
        );
        assert!(
            !s.starts_with('-') && !s.ends_with('-'),
            "accepted id with a leading or trailing '-': {s:?}"
        );
        assert_eq!(id.to_string(), raw, "Display differs from the input");
    }
});
