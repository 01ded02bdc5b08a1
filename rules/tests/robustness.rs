//! Parser robustness: random and mutated rule texts and conditions never panic; every
//! failure is an error value. (The `cargo fuzz` target in `fuzz/` does the same unbounded.)

use logward_rules::{Engine, EngineConfig, condition, documents_from_str};

/// xorshift64*: a small deterministic generator, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEED_RULE: &str = "title: t\nid: x\nlogsource: {product: linux, service: sshd}\ndetection:\n  sel:\n    a|contains|all: ['x*y', 'z?']\n    b|re|i: '^a+$'\n    c|cidr: 10.0.0.0/8\n    d|base64offset|contains: abc\n    e|windash|startswith: '-x'\n    f|gt: 3\n  kw: [foo, 'b\\*r']\n  condition: 1 of sel* and not kw or (all of them)\n---\ntitle: c\ncorrelation:\n  type: value_count\n  rules: [x]\n  group-by: [h]\n  timespan: 5m\n  condition: {field: u, gte: 2}\n";
const ALPHABET: &[&str] = &[
    "(",
    ")",
    " and ",
    " or ",
    " not ",
    "1 of ",
    "all of ",
    "them",
    "sel*",
    "|",
    ":",
    "-",
    "\n",
    "  ",
    "'",
    "\"",
    "{",
    "}",
    "[",
    "]",
    "*",
    "?",
    "\\",
    "|re",
    "|base64offset",
    "|cidr",
    "null",
    "---",
    "&a",
    "*a",
    "!!",
    "%",
    "é",
    "\u{0}",
    "(?=",
    "{1000}{1000}",
    "correlation:",
    "filter:",
];

fn check(text: &str) {
    if let Ok(docs) = documents_from_str(text) {
        let _ = Engine::new(&docs, &EngineConfig::default());
        let _ = Engine::new(
            &docs,
            &EngineConfig {
                ignore_logsource: true,
                ..EngineConfig::default()
            },
        );
    }
    let names: Vec<String> = ["sel", "sel2", "kw", "_x"].map(String::from).to_vec();
    let _ = condition::parse(text, &names);
}

#[test]
fn mutated_rules_and_conditions_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let mut s: Vec<char> = SEED_RULE.chars().collect();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(s.len() + 1);
            match rng.below(3) {
                0 => {
                    let ins: Vec<char> = ALPHABET[rng.below(ALPHABET.len())].chars().collect();
                    s.splice(at..at, ins);
                }
                1 if at < s.len() => {
                    let end = (at + rng.below(8)).min(s.len());
                    s.drain(at..end);
                }
                _ => {
                    let other = rng.below(s.len().max(1));
                    if at < s.len() && other < s.len() {
                        s.swap(at, other);
                    }
                }
            }
        }
        check(&s.into_iter().collect::<String>());
    }
    for _ in 0..3000 {
        let n = rng.below(20);
        let s: String = (0..n)
            .map(|_| ALPHABET[rng.below(ALPHABET.len())])
            .collect();
        check(&s);
    }
}

#[test]
fn pathological_inputs_are_clear_errors() {
    let deep = format!(
        "title: d\ndetection:\n  sel: {{a: b}}\n  condition: {}sel{}\n",
        "(".repeat(300),
        ")".repeat(300)
    );
    let err = format!(
        "{:?}",
        documents_from_str(&deep).map(|d| Engine::new(&d, &EngineConfig::default()).err())
    );
    assert!(err.contains("nested deeper"), "{err}");
    let laughs = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n";
    let err = documents_from_str(laughs).expect_err("aliases refused");
    assert!(err[0].to_string().contains("aliases"), "{err:?}");
    let huge_re = "title: r\ndetection:\n  sel: {a|re: 'x{1000}{1000}{1000}'}\n  condition: sel\n";
    let docs = documents_from_str(huge_re).expect("parses");
    let err = Engine::new(&docs, &EngineConfig::default())
        .err()
        .expect("too big");
    assert!(err[0].to_string().contains("regular expression"), "{err:?}");
}
