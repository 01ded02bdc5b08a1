//! Tables of query strings, times and cursors with what each must give.
use super::*;

const NOW: i64 = 1_700_000_000_000_000_000;

#[test]
fn relative_and_absolute_times() {
    assert_eq!(parse_time("now", NOW), Ok(NOW));
    assert_eq!(parse_time("now+2d", NOW), Ok(NOW + 2 * 86_400_000_000_000));
    assert_eq!(parse_time("now-250ms", NOW), Ok(NOW - 250_000_000));
    assert!(
        parse_time("now-5y", NOW)
            .unwrap_err()
            .contains("unknown unit")
    );
    assert!(
        parse_time("now-99999999999999w", NOW)
            .unwrap_err()
            .contains("out of range")
    );
    assert_eq!(
        parse_time("2023-11-14T23:13:20.5+01:00", NOW),
        Ok(NOW + 500_000_000)
    );
}

#[test]
fn cursor_round_trips() {
    let c = Cursor {
        order: Order::Asc,
        timestamp_nanos: -12,
        uid: u64::MAX,
    };
    assert_eq!(Cursor::decode(&c.encode()), Some(c));
}

/// The error of a query under `limits` (checked as the API does, then built), if any.
fn query_error(q: &str, limits: &QueryLimits) -> Option<String> {
    let schema = EventSchema::new();
    let mut parser = QueryParser::new(
        schema.schema.clone(),
        vec![schema.message],
        tantivy::tokenizer::TokenizerManager::default(),
    );
    parser.set_conjunction_by_default();
    CheckedQuery::parse(q, limits)
        .and_then(|checked| build_query(&parser, &schema, &checked, None, None).map(|_| ()))
        .err()
        .map(|e| e.to_string())
}

/// One helper for query checks: `expected` is empty for a query that must pass, or
/// a part of the error.
fn check_q(q: &str, limits: &QueryLimits, expected: &str) {
    let got = query_error(q, limits);
    if expected.is_empty() {
        assert_eq!(got, None, "{q:?}");
    } else {
        let got = got.unwrap_or_default();
        assert!(got.contains(expected), "{q:?}: {got:?} lacks {expected:?}");
    }
}

fn terms(n: usize, joiner: &str) -> String {
    (0..n)
        .map(|i| format!("x{i}"))
        .collect::<Vec<_>>()
        .join(joiner)
}

/// The fixtures in `queries/`: each file holds `query: <JSON string>` and `expect: ok`
/// or `expect: error: <part of the error text>`, checked under the default limits.
#[test]
fn query_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/search/query/queries");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("queries dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    assert!(files.len() >= 28, "fixtures missing in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read fixture");
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{}: no {key:?} line", file.display()))
                .trim()
                .to_owned()
        };
        let query: String = serde_json::from_str(&field("query:"))
            .unwrap_or_else(|e| panic!("{}: query is no JSON string: {e}", file.display()));
        let expect = field("expect:");
        let expected = match expect.strip_prefix("error:") {
            Some(error) => error.trim().to_owned(),
            None if expect == "ok" => String::new(),
            None => panic!("{}: expect is ok or error: <text>", file.display()),
        };
        check_q(&query, &QueryLimits::default(), &expected);
    }
}

#[test]
fn query_limits_are_the_configured_ones() {
    let d = QueryLimits::default();
    let small = QueryLimits {
        max_bytes: 16,
        max_clauses: 3,
    };
    let large = QueryLimits {
        max_bytes: 100_000,
        max_clauses: 1_000,
    };
    let clause_error = "limits.query_max_clauses is 64";
    check_q(&terms(64, " "), &d, clause_error); // 64 terms and their group
    check_q(&terms(63, " "), &d, "");
    check_q(&terms(300, " OR "), &d, clause_error);
    check_q(&terms(300, " OR "), &large, "");
    check_q("a b c", &small, "limits.query_max_clauses is 3");
    check_q("a b", &small, "");
    check_q(&format!("host: IN [{}]", terms(70, " ")), &d, clause_error);
    check_q(
        &"a".repeat(17),
        &small,
        "query is 17 bytes long; limits.query_max_bytes is 16",
    );
    check_q(&"a".repeat(16), &small, "");
    check_q(&"x ".repeat(2100), &d, "limits.query_max_bytes is 4096");
    let err = CheckedQuery::parse(&"a".repeat(17), &small).expect_err("too long");
    assert_eq!(err.limit(), Some(("query_max_bytes", 16)));
    let err = CheckedQuery::parse("a b c", &small).expect_err("too many");
    assert_eq!(err.limit(), Some(("query_max_clauses", 3)));
}

#[test]
fn nesting_is_bounded_however_the_query_is_quoted() {
    let d = QueryLimits::default();
    let deep = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
    check_q(&deep(16), &d, "");
    check_q(&deep(17), &d, "parentheses nest 17 deep");
    // Quotes the scanner might misread cannot hide groups: every '(' and NOT counts.
    check_q(&format!("'\"' {}", deep(200)), &d, "nest");
    check_q(&format!("'\"' {}", deep(100)), &d, "nest 100 deep");
    check_q(&format!("a\"b {}", deep(100)), &d, "syntax error");
    check_q(&format!("message:/\"/ {}", deep(200)), &d, "more than 128");
    check_q(
        &"(".repeat(16_000),
        &d,
        "16000 '(' and NOT in one query, more than 128",
    );
    check_q(&format!("{}a", "NOT ".repeat(129)), &d, "more than 128");
    check_q(
        &format!("{}a", "NOT ".repeat(10)),
        &d,
        "Only excluding terms",
    );
    let err = CheckedQuery::parse(&deep(17), &d).expect_err("deep");
    assert_eq!(err.limit(), Some(("query_max_nesting", MAX_NESTING)));
}

/// The grammar recurses once per `(` or `NOT`; at the token bound it still fits a
/// default thread stack, in the strict and the lenient (error message) parser alike,
/// whatever the nesting check would say.
#[test]
fn the_parser_fits_a_default_stack_at_the_group_token_bound() {
    let n = MAX_GROUP_TOKENS / 2;
    let queries = [
        format!(
            "{}a{}",
            "(".repeat(MAX_GROUP_TOKENS),
            ")".repeat(MAX_GROUP_TOKENS)
        ),
        format!("{}a", "NOT ".repeat(MAX_GROUP_TOKENS)),
        format!("{}(a", "NOT (".repeat(n)),
        "host:(".repeat(MAX_GROUP_TOKENS),
        "(".repeat(MAX_GROUP_TOKENS),
    ];
    let worker = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            for q in &queries {
                let _ = tantivy::query_grammar::parse_query(q);
                let _ = tantivy::query_grammar::parse_query_lenient(q);
                let schema = EventSchema::new();
                let parser = QueryParser::new(
                    schema.schema.clone(),
                    vec![schema.message],
                    tantivy::tokenizer::TokenizerManager::default(),
                );
                let _ = parser.parse_query(q);
            }
        })
        .expect("spawn");
    // A stack overflow aborts the whole test binary (it is no panic that `join` could
    // see), so reaching the next line is the assertion; `join` reports real panics.
    worker.join().expect("the parser panicked");
}
