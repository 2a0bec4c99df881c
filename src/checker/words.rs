//! Prose helpers: how explanations count, list and name things.

use crate::domain::{Msg, Validation};

/// `1 unit`, `2 units`.
pub fn units<N: Into<i128>>(n: N) -> String {
    let n: i128 = n.into();
    if n == 1 {
        format!("{n} unit")
    } else {
        format!("{n} units")
    }
}

/// `1 phantom unit`, `2 leaked units`.
pub fn units_adj<N: Into<i128>>(n: N, adjective: &str) -> String {
    let n: i128 = n.into();
    if n == 1 {
        format!("{n} {adjective} unit")
    } else {
        format!("{n} {adjective} units")
    }
}

/// `a`, `a and b`, `a, b and c`.
pub fn and_list(items: &[String]) -> String {
    join_list(items, "and")
}

/// `a`, `a or b`, `a, b or c` (with any conjunction).
pub fn join_list(items: &[String], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

pub fn orders_word(n: usize) -> &'static str {
    if n == 1 {
        "order"
    } else {
        "orders"
    }
}

/// `OrderValidation PASS`, `ProductReserved`, ...
pub fn label(msg: &Msg) -> &'static str {
    match msg {
        Msg::OrderValidation { result, .. } => match result {
            Validation::Pass => "OrderValidation PASS",
            Validation::Fail => "OrderValidation FAIL",
        },
        other => other.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lists_read_as_english() {
        assert_eq!(
            (units(1), units(-1), units(2u64)),
            ("1 unit".into(), "-1 units".into(), "2 units".into())
        );
        assert_eq!(units_adj(1, "phantom"), "1 phantom unit");
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(and_list(&l(&[])), "");
        assert_eq!(and_list(&l(&["a"])), "a");
        assert_eq!(and_list(&l(&["a", "b", "c"])), "a, b and c");
        assert_eq!(join_list(&l(&["a", "b"]), "or"), "a or b");
        assert_eq!((orders_word(1), orders_word(2)), ("order", "orders"));
    }
}
