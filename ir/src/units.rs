//! Numbers as people read them, shared by the compiler's reports and the runtime's output.

/// Thousands separated by commas: 60,965,224.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units: 1.50 GiB.
pub fn human_bytes(b: usize) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", units[u])
    }
}

/// Parses `24GiB`, `512MiB`, `1.5GB`, `1000000`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("`{s}` is not a size: write e.g. 24GiB or 512MiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        "t" | "tib" => 1024f64.powi(4),
        "tb" => 1e12,
        _ => return Err(format!("unknown unit in `{s}`: use B, KiB, MiB, GiB, TiB (or kB, MB, GB, TB)")),
    };
    if value <= 0.0 || !value.is_finite() {
        return Err(format!("`{s}` is not a positive size"));
    }
    Ok((value * scale) as u64)
}

/// `n` and the noun in the form it takes after it: `1 shard`, `2 shards`, `0 shards`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod plural_tests {
    #[test]
    fn one_takes_the_singular_and_every_other_count_the_plural() {
        assert_eq!(super::plural(1, "shard", "shards"), "1 shard");
        assert_eq!(super::plural(0, "shard", "shards"), "0 shards");
        assert_eq!(super::plural(2, "unreadable image", "unreadable images"), "2 unreadable images");
    }
}
