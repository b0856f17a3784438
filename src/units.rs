//! Sizes and durations as people type them (`50MiB`, `2m`), for the flags,
//! and rates as reports print them.
//!
//! Every flag that takes a size or a time accepts the human form, and also
//! a bare number (bytes, seconds or milliseconds, as the flag says), which
//! scripts written for older versions pass. `bytesize` reads sizes (`50MiB`, `500KB`, `1.5GB`: IEC and
//! SI units, case-insensitive) and `humantime` durations (`90s`, `2m`,
//! `1h30m`, `500ms`), the crates rclone-style units map onto.

use std::time::Duration;

/// A size: `50MiB`, `500KB`, or a bare number of bytes.
pub fn size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if let Ok(bytes) = t.parse::<u64>() {
        return Ok(bytes);
    }
    t.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| {
            format!("{text:?} is not a size: write it as 50MiB, 500KB or 2GB, or a number of bytes")
        })
}

/// A duration: `2m`, `90s`, `1h30m`, or a bare number of seconds.
pub fn seconds(text: &str) -> Result<Duration, String> {
    duration(text, Duration::from_secs, "seconds")
}

/// A duration: `500ms`, `2s`, or a bare number of milliseconds.
pub fn millis(text: &str) -> Result<Duration, String> {
    duration(text, Duration::from_millis, "milliseconds")
}

fn duration(text: &str, bare: fn(u64) -> Duration, unit: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(bare(n));
    }
    humantime::parse_duration(t).map_err(|_| {
        format!(
            "{text:?} is not a duration: write it as 500ms, 90s, 2m or 1h30m, or a number of {unit}"
        )
    })
}

/// A DNS server: `IP:PORT`, or an IP alone for port 53.
pub fn socket_addr_53(text: &str) -> Result<std::net::SocketAddr, String> {
    let t = text.trim();
    t.parse::<std::net::SocketAddr>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
        .map_err(|_| format!("{text:?} is not an address: write it as 10.0.0.2 or 10.0.0.2:53"))
}

/// Items per second; zero when no time has passed.
pub fn rate(done: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { done as f64 / secs } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_units_and_bare_bytes() {
        assert_eq!(size("50MiB"), Ok(50 * 1024 * 1024));
        assert_eq!(size("500KB"), Ok(500_000));
        assert_eq!(size("2 GiB"), Ok(2 << 30));
        assert_eq!(size("52428800"), Ok(52_428_800));
        for bad in ["", "fifty", "50XB", "-1"] {
            let e = size(bad).unwrap_err();
            assert!(
                e.contains("is not a size") && !e.contains('\n'),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn durations_take_units_and_bare_numbers_in_the_flags_unit() {
        assert_eq!(seconds("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(seconds("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(seconds("45"), Ok(Duration::from_secs(45)));
        assert_eq!(millis("500"), Ok(Duration::from_millis(500)));
        assert_eq!(millis("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(millis("0"), Ok(Duration::ZERO));
        let e = seconds("2 minutes please").unwrap_err();
        assert!(e.contains("number of seconds"), "{e}");
        assert!(millis("x").unwrap_err().contains("milliseconds"));
    }
}
