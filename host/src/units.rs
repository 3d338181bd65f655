//! Sizes as users write them, for every option and setting that takes one
//! (`--memory`, `--shm-size`, `tmpfs-size=`, `--plugin-memory`, policy
//! files): one parser, podman's forms.

/// Parses a size: a number, optionally with a fraction, and a binary unit
/// `b`, `k`, `m`, `g`, `t` or `p` (any case, optionally followed by `b` or
/// `ib`: `64m`, `1GiB`, `1.5g`). Zero is refused: everywhere a size is
/// taken, zero would mean "nothing" or "no limit", never what was meant.
pub fn parse_size(value: &str) -> Result<u64, String> {
    let bad = || format!("`{value}` is not a size (e.g. 64m, 1g)");
    let lower = value.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let shift = match unit.trim_start() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => return Err(bad()),
    };
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(bad());
    }
    let bytes = match number.split_once('.') {
        None => number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1u64 << shift))
            .ok_or_else(bad)?,
        Some(_) => {
            let n: f64 = number.parse().map_err(|_| bad())?;
            let bytes = n * (1u64 << shift) as f64;
            if !bytes.is_finite() || bytes >= u64::MAX as f64 {
                return Err(bad());
            }
            bytes as u64
        }
    };
    if bytes == 0 {
        return Err(format!("`{value}`: a size must be greater than zero"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_podmans_forms() {
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("512"), Ok(512));
        for bad in ["x", "0", "", "1.", ".5m", "5q", "-1", "99999999999p"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
