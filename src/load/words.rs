//! How the loader's messages name things: quoting, values, lists, "did you mean".

use toml::de::DeValue;

/// `key` in backticks when it is plain, else a quoted, escaped string.
pub(super) fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.len() <= 80
        && s.chars()
            .all(|c| c.is_alphanumeric() || "-_.:/".contains(c))
    {
        format!("`{s}`")
    } else {
        quote_str(s)
    }
}

/// A string in double quotes, escaped, cut at 80 characters.
pub(super) fn quote_str(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{s:?}")
    }
}

/// A value as the messages name it: `the string "x"`, `the number 3`, `a table`, ...
pub(super) fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the string {}", quote_str(s)),
        DeValue::Integer(i) => format!("the number {i}"),
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            Ok(x) => format!("the number {x}"),
            Err(_) => format!("the number {f}"),
        },
        DeValue::Boolean(b) => format!("{b}"),
        DeValue::Datetime(d) => format!("the date {d}"),
        DeValue::Array(_) => "a list".into(),
        DeValue::Table(_) => "a table".into(),
    }
}

pub(super) fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().collect::<Vec<_>>().join(", ")
}

/// A list, cut after ten names when longer than twelve.
pub(super) fn list_capped<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let all: Vec<&str> = items.into_iter().collect();
    if all.len() <= 12 {
        all.join(", ")
    } else {
        format!("{}, … ({} in all)", all[..10].join(", "), all.len())
    }
}

/// The candidate nearest to `word` (Levenshtein distance, ignoring case and `-`/`_`),
/// if near enough to be a likely typo.
pub(super) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if word.chars().count() > 64 {
        return None;
    }
    let norm = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    };
    let w = norm(word);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let cn = norm(c);
        let d = strsim::levenshtein(&w, &cn);
        let limit = (cn.chars().count().max(w.chars().count()) / 3).max(1);
        let prefix = w.chars().count() >= 3 && (cn.starts_with(&w) || w.starts_with(&cn));
        let better = match best {
            None => true,
            Some((b, _)) => d < b,
        };
        if (d <= limit || prefix) && better {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean `x`? {rest}` when a candidate is near, else `rest`.
pub(super) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    rest: String,
) -> String {
    match nearest(word, candidates) {
        Some(s) => format!("did you mean `{s}`? {rest}"),
        None => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_keys() {
        assert_eq!(nearest("stok", ["id", "stock"]), Some("stock"));
        assert_eq!(
            nearest(
                "commit-interval-ms",
                ["commit_interval_ms", "session_timeout_ms"]
            ),
            Some("commit_interval_ms")
        );
        assert_eq!(
            nearest("partition", ["partitions", "instances"]),
            Some("partitions")
        );
        assert_eq!(nearest("naïve", ["naive", "saga"]), Some("naive"));
        assert_eq!(nearest("zzz", ["partitions", "instances"]), None);
    }
}
