//! The YAML nesting budget (`max_yaml_depth`): deep texts are refused with an error naming
//! the limit, before any recursive step runs. Each case runs on a thread with a 256 KiB
//! stack, so an overflow would abort the test binary.

use logward_rules::{YamlLimits, load_documents, parse_documents_with};

fn check(name: &str, text: String, expected_error: Option<&str>) {
    let name = name.to_owned();
    let want = expected_error.map(str::to_owned);
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let got = parse_documents_with(&text, &YamlLimits::default());
            match (&got, &want) {
                (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{name}: {e}"),
                (Ok(_), None) => {}
                _ => panic!("{name}: got {got:?}, want error {want:?}"),
            }
        })
        .expect("spawn")
        .join()
        .expect("no overflow");
}

fn block_seq(n: usize) -> String {
    let mut s = "- ".repeat(n);
    s.push('x');
    s
}

fn block_map(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&" ".repeat(i));
        s.push_str("k:\n");
    }
    s.push_str(&" ".repeat(n));
    s.push('x');
    s
}

fn flow_seq(n: usize) -> String {
    format!("{}x{}", "[".repeat(n), "]".repeat(n))
}

fn flow_map(n: usize) -> String {
    format!("{}x{}", "{a: ".repeat(n), "}".repeat(n))
}

const REFUSED: &str = "YAML nesting depth exceeds max_yaml_depth = 64";

#[test]
fn deep_nesting_is_refused_with_the_limit_named_and_without_overflow() {
    for n in [5_000, 30_000] {
        check(&format!("block sequences {n}"), block_seq(n), Some(REFUSED));
        check(&format!("flow sequences {n}"), flow_seq(n), Some(REFUSED));
        check(&format!("flow mappings {n}"), flow_map(n), Some(REFUSED));
    }
    // Indented block mappings grow quadratically in bytes; 2,000 levels is ~2 MB.
    check("block mappings 2000", block_map(2_000), Some(REFUSED));
    check("flow sequences 64", flow_seq(64), None);
    check("flow sequences 65", flow_seq(65), Some(REFUSED));
    check(
        "the depth is counted across documents, not summed",
        format!("{}\n---\n{}", flow_seq(60), flow_seq(60)),
        None,
    );
}

#[test]
fn the_budget_is_configurable_and_one_bad_document_spares_the_others() {
    let deep = flow_seq(10);
    let tight = YamlLimits { max_yaml_depth: 5 };
    let err = parse_documents_with(&deep, &tight).expect_err("refused");
    assert!(err.to_string().contains("max_yaml_depth = 5"), "{err}");
    let wide = YamlLimits {
        max_yaml_depth: 100,
    };
    assert!(parse_documents_with(&deep, &wide).is_ok());

    let text = "title: good\ndetection: {sel: {a: 1}, condition: sel}\n---\ntitle: bad\n---\ntitle: also good\ndetection: {sel: {b: 1}, condition: sel}\n";
    let (docs, errors) = load_documents(text, &YamlLimits::default()).expect("parses");
    assert_eq!(docs.len(), 2);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().contains("rule 'bad'"),
        "{}",
        errors[0]
    );
}
