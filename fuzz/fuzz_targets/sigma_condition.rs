//! Fuzzes the Sigma `condition` parser (`condition::parse`) over four selections named
//! `sel1`, `sel2`, `filter` and `_hidden`.
//!
//! Checks beyond "no panic": a parsed condition is printed back as a condition with
//! parentheses around every group (`1 of`/`N of`/`all of` expanded into `or`/`and`), which must
//! parse again and agree with the original on all 16 combinations of selection results.
//! This holds the parser's precedence (`not` > `and` > `or`), the quantifiers and the
//! evaluator to one another.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logward_rules::condition::{Expr, parse};

const NAMES: [&str; 4] = ["sel1", "sel2", "filter", "_hidden"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let names: Vec<String> = NAMES.map(String::from).to_vec();
    let Ok(expr) = parse(text, &names) else {
        return;
    };
    let printed = print(&expr);
    let again = match parse(&printed, &names) {
        Ok(again) => again,
        // Expanding a quantifier adds a level; the limits may refuse the longer text.
        Err(e) if e.to_string().contains("nested deeper") || e.to_string().contains("too long") => {
            return;
        }
        Err(e) => panic!("{text:?} printed as {printed:?} does not parse: {e}"),
    };
    for bits in 0..16_u8 {
        let mut sel = |i: usize| bits & (1 << i) != 0;
        let want = expr.eval(&mut sel);
        assert_eq!(
            again.eval(&mut sel),
            want,
            "{text:?} and {printed:?} differ on {bits:04b}"
        );
        assert_eq!(reference(&expr, bits), want, "{text:?}: eval on {bits:04b}");
    }
});

/// The condition as text, fully parenthesised, without quantifiers.
fn print(e: &Expr) -> String {
    match e {
        Expr::Sel(i) => NAMES[*i].to_owned(),
        Expr::Not(e) => format!("not ({})", print(e)),
        Expr::And(v) => join(v.iter().map(print), "and"),
        Expr::Or(v) => join(v.iter().map(print), "or"),
        Expr::Of {
            all: true, sels, ..
        } => join(sels.iter().map(|i| NAMES[*i].to_owned()), "and"),
        Expr::Of { n, sels, .. } => {
            // At least n of sels: the `or` of every n-subset's `and`.
            let subsets: Vec<String> = (0..1_u32 << sels.len())
                .filter(|m| m.count_ones() as usize == *n)
                .map(|m| {
                    let picked = (0..sels.len())
                        .filter(|b| m & (1 << b) != 0)
                        .map(|b| NAMES[sels[b]].to_owned());
                    join(picked, "and")
                })
                .collect();
            if subsets.is_empty() {
                "(sel1 and not (sel1))".to_owned() // more than there are: never true
            } else {
                join(subsets.into_iter(), "or")
            }
        }
    }
}

fn join(parts: impl Iterator<Item = String>, op: &str) -> String {
    let parts: Vec<String> = parts
        .map(|p| {
            if NAMES.contains(&p.as_str()) {
                p
            } else {
                format!("({p})")
            }
        })
        .collect();
    format!("({})", parts.join(&format!(" {op} ")))
}

/// Evaluation written out independently of `Expr::eval`.
fn reference(e: &Expr, bits: u8) -> bool {
    let on = |i: &usize| bits & (1 << i) != 0;
    match e {
        Expr::Sel(i) => on(i),
        Expr::Not(e) => !reference(e, bits),
        Expr::And(v) => v.iter().all(|e| reference(e, bits)),
        Expr::Or(v) => v.iter().any(|e| reference(e, bits)),
        Expr::Of {
            all: true, sels, ..
        } => sels.iter().all(on),
        Expr::Of { n, sels, .. } => sels.iter().filter(|i| on(i)).count() >= *n,
    }
}
