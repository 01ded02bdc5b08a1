//! Tables of request parameters with what each must give.
use super::*;
use crate::search::query::QueryLimits;

const NOW: i64 = 1_700_000_000_000_000_000;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// One helper for the whole table: the parsed params, or the error text.
fn check(input: &[(&str, &str)], expected: &Result<SearchParams, &str>) {
    let got =
        parse_search_params(&pairs(input), NOW, &QueryLimits::CEILING).map_err(|e| e.to_string());
    match (&got, expected) {
        (Ok(g), Ok(e)) => assert_eq!(g, e, "input {input:?}"),
        (Err(g), Err(e)) => assert!(g.contains(e), "input {input:?}: error {g:?} lacks {e:?}"),
        _ => panic!("input {input:?}: got {got:?}, expected {expected:?}"),
    }
}

fn params() -> SearchParams {
    SearchParams {
        query: CheckedQuery::all(),
        start: None,
        end: None,
        limit: 100,
        cursor: None,
        order: Order::Desc,
        fields: None,
        highlight: false,
        max_response_bytes: usize::MAX,
    }
}

#[test]
fn search_parameters() {
    check(&[], &Ok(params()));
    check(
        &[("q", "error"), ("limit", "5"), ("order", "asc")],
        &Ok(SearchParams {
            query: "error".into(),
            limit: 5,
            order: Order::Asc,
            ..params()
        }),
    );
    check(
        &[("limit", "99999999")],
        &Ok(SearchParams {
            limit: MAX_LIMIT,
            ..params()
        }),
    );
    check(
        &[("limit", "0")],
        &Ok(SearchParams {
            limit: 0,
            ..params()
        }),
    );
    check(&[("limit", "-1")], &Err("parameter 'limit'"));
    check(&[("limit", "ten")], &Err("not a whole number"));
    check(
        &[("limit", "99999999999999999999999")],
        &Err("not a whole number"),
    );
    check(&[("limit", "2000000000")], &Err("absurd"));
    check(&[("fields", "id,colour")], &Err("unknown field 'colour'"));
    check(&[("fields", ",")], &Err("names no field"));
    check(&[("highlight", "maybe")], &Err("neither true nor false"));
    check(
        &[
            ("fields", "id, container.labels.a.b"),
            ("highlight", "true"),
        ],
        &Ok(SearchParams {
            fields: Some(vec!["id".into(), "container.labels.a.b".into()]),
            highlight: true,
            ..params()
        }),
    );
    check(&[("order", "up")], &Err("neither 'desc' nor 'asc'"));
    check(&[("start", "yesterday")], &Err("parameter 'start'"));
    check(
        &[("start", "now-1h")],
        &Ok(SearchParams {
            start: Some(NOW - 3_600_000_000_000),
            ..params()
        }),
    );
    check(
        &[("end", "1700000000000")],
        &Ok(SearchParams {
            end: Some(NOW),
            ..params()
        }),
    );
    check(
        &[("start", "2023-11-14T22:13:20Z")],
        &Ok(SearchParams {
            start: Some(NOW),
            ..params()
        }),
    );
    check(
        &[("start", "now"), ("end", "now-1m")],
        &Err("later than start"),
    );
    check(&[("colour", "red")], &Err("unknown parameter 'colour'"));
    check(&[("q", "a"), ("q", "b")], &Err("more than once"));
    check(&[("cursor", "zzz")], &Err("parameter 'cursor'"));
    check(&[("cursor", "a5.ff")], &Err("other sort order"));
    check(
        &[("cursor", "d5.ff")],
        &Ok(SearchParams {
            cursor: Some(Cursor {
                order: Order::Desc,
                timestamp_nanos: 5,
                uid: 255,
            }),
            ..params()
        }),
    );
}
