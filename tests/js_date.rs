//! The timestamp reader against node: `Date.parse` (V8, `TZ=UTC`) and the crate's
//! [`parse_timestamp`] must agree on every one of 100,000 generated strings, accepted and
//! refused forms alike. Prints `js date differential: N strings, M agree, K differ`. Needs
//! `node` (on this project's machines); without it the test says so and passes, except under
//! `CI=true`, where it fails.

use rokt_capi::payload::parse_timestamp as parse;
use std::io::Write;
use std::process::{Command, Stdio};

/// A small deterministic generator (xorshift64*), so a failure reproduces without a seed file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// `digits` decimal digits, leading zeros included.
    fn digits(&mut self, digits: usize) -> String {
        (0..digits)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    /// 1 to `max` decimal digits.
    fn some_digits(&mut self, max: usize) -> String {
        let len = 1 + self.below(max);
        self.digits(len)
    }

    /// A two-digit field, mostly in `0..=max`, sometimes just past it, sometimes mis-sized.
    fn field(&mut self, max: usize) -> String {
        match self.below(20) {
            0 => self.digits(1),
            1 => self.digits(3),
            2 => format!("{:02}", max + 1 + self.below(3)),
            _ => format!("{:02}", self.below(max + 1)),
        }
    }
}

const SPACES: &[&str] = &[
    " ", " ", " ", "\t", "\n", "\r", "\u{b}", "\u{c}", "\u{a0}", "\u{1680}", "\u{2000}",
    "\u{200a}", "\u{2028}", "\u{2029}", "\u{202f}", "\u{205f}", "\u{3000}", "\u{feff}", "\u{85}",
    "\u{180e}", "\u{200b}",
];

const WORDS: &[&str] = &[
    "March",
    "Mar",
    "mar",
    "MARCH",
    "Marzipan",
    "Ma",
    "Sept",
    "September",
    "jan",
    "Feb",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Oct",
    "Nov",
    "Dec",
    "Wed",
    "Wednesday",
    "Thu",
    "Mon",
    "am",
    "pm",
    "AM",
    "PM",
    "a.m.",
    "p",
    "GMT",
    "gmt",
    "UTC",
    "UT",
    "Z",
    "z",
    "EST",
    "EDT",
    "CST",
    "CDT",
    "MST",
    "MDT",
    "PST",
    "PDT",
    "CET",
    "BST",
    "T",
    "t",
    "Tx",
    "utcx",
    "gmtt",
    "junk",
    "x",
    "é",
    "Ωmega",
    "日本",
    "März",
    "décembre",
    "_",
    "[",
    "`",
    "~",
    "Z\u{2028}",
    "\u{2028}",
    "\u{1F600}",
];

const PUNCT: &[&str] = &[
    "/",
    ",",
    ", ",
    "-",
    "--",
    "+",
    ".",
    "..",
    ":",
    "::",
    ")",
    "(",
    "()",
    "(x)",
    "(Coordinated Universal Time)",
    "(a (b) c)",
    "((",
    "#",
    "'",
    "\"",
    "@",
    "?",
    "\0",
];

/// One string, drawn from the ISO forms, the legacy forms, random token soup, or a mutation of
/// one of those.
fn generate(rng: &mut Rng) -> String {
    let s = match rng.below(10) {
        0..=3 => iso(rng),
        4..=6 => legacy(rng),
        7 => soup(rng),
        _ => {
            let base = if rng.chance(50) {
                iso(rng)
            } else {
                legacy(rng)
            };
            mutate(rng, base)
        }
    };
    if rng.chance(5) { mutate(rng, s) } else { s }
}

fn iso(rng: &mut Rng) -> String {
    let mut s = String::new();
    match rng.below(12) {
        0 => {
            s += rng.pick(&["+", "-"]);
            s += &match rng.below(6) {
                0 => "000000".to_string(),
                1 => rng
                    .pick(&["275760", "275761", "271821", "271822", "999999"])
                    .to_string(),
                2 => {
                    let len = 5 + 2 * rng.below(2);
                    rng.digits(len)
                }
                _ => format!("00{}", rng.digits(4)),
            };
        }
        1 => s += &rng.some_digits(9),
        2 => s += &format!("{:04}", rng.below(100)),
        _ => s += &format!("{}", 1900 + rng.below(200)),
    }
    if rng.chance(85) {
        s += "-";
        s += &rng.field(12);
        if rng.chance(85) {
            s += "-";
            s += &rng.field(31);
        }
    }
    if rng.chance(80) {
        s += rng.pick(&["T", "T", "T", "t", " ", "  ", "\u{a0}", "", "Tx", "_"]);
        let hour = if rng.chance(10) {
            "24".to_string()
        } else {
            rng.field(23)
        };
        s += &hour;
        if rng.chance(95) {
            s += ":";
            s += &if rng.chance(15) {
                "00".to_string()
            } else {
                rng.field(59)
            };
            if rng.chance(80) {
                s += ":";
                s += &if rng.chance(15) {
                    "00".to_string()
                } else {
                    rng.field(59)
                };
                if rng.chance(60) {
                    s += rng.pick(&[".", ".", ",", ":"]);
                    let len = 1 + rng.below(12);
                    s += &if rng.chance(20) {
                        "0".repeat(len)
                    } else {
                        rng.digits(len)
                    };
                }
            }
        }
        match rng.below(10) {
            0..=3 => s += rng.pick(&["Z", "z", " Z", "GMT", " UTC", " EST", "ZZ"]),
            4..=6 => {
                s += rng.pick(&["+", "-", "+", " +", "--"]);
                s += &rng.field(23);
                match rng.below(4) {
                    0 => {}
                    1 => s += &rng.field(59),
                    _ => {
                        s += ":";
                        s += &rng.field(59);
                    }
                }
            }
            _ => {}
        }
    }
    if rng.chance(10) {
        s += &junk(rng);
    }
    if rng.chance(5) {
        s.insert_str(0, &junk(rng));
    }
    s
}

fn legacy(rng: &mut Rng) -> String {
    const MONTHS: &[&str] = &[
        "Jan", "February", "Mar", "April", "may", "JUNE", "Sept", "Dec",
    ];
    const DAYS: &[&str] = &["Wed", "Thursday", "Sun,", "mon."];
    const ZONES: &[&str] = &[
        "GMT",
        "UTC",
        "UT",
        "Z",
        "EST",
        "EDT",
        "CST",
        "PDT",
        "GMT+0530",
        "GMT-8",
        "GMT+05:30",
        "+0530",
        "-08:00",
        "+5",
        "-123",
        "+12345",
        "UTC+1",
        "GMT+",
        "+:30",
        "Z+01",
    ];
    let year = match rng.below(5) {
        0 => format!("{}", rng.below(100)),
        1 => format!("{:02}", rng.below(100)),
        2 => rng.some_digits(7),
        _ => format!("{}", 1950 + rng.below(100)),
    };
    let month = rng.field(12);
    let day = rng.field(31);
    let mon = rng.pick(MONTHS);
    let time = match rng.below(8) {
        0 => String::new(),
        1 => format!("{}:{}", rng.field(24), rng.field(59)),
        2 => format!("{}:{}:{}", rng.field(24), rng.field(59), rng.field(59)),
        3 => format!(
            "{}:{}:{}.{}",
            rng.field(23),
            rng.field(59),
            rng.field(59),
            rng.some_digits(5)
        ),
        4 => format!("{}::", rng.field(23)),
        5 => format!("{}.{}", rng.field(23), rng.field(59)),
        6 => format!("{}:{}.{}", rng.field(23), rng.field(59), rng.field(59)),
        _ => format!("{}:", rng.field(23)),
    };
    let time = if !time.is_empty() && rng.chance(35) {
        format!(
            "{time}{}{}",
            rng.pick(&[" ", "", " "]),
            rng.pick(&["AM", "PM", "am", "pm"])
        )
    } else {
        time
    };
    let time = if rng.chance(35) {
        format!("{time} {}", rng.pick(ZONES))
    } else {
        time
    };
    let sep = rng.pick(&[" ", " ", ", ", "/", "-", "."]);
    let mut s = match rng.below(9) {
        0 => format!("{mon} {day}, {year} {time}"),
        1 => format!("{day} {mon} {year} {time}"),
        2 => format!("{year}/{month}/{day} {time}"),
        3 => format!("{month}/{day}/{year} {time}"),
        4 => format!("{}, {day} {mon} {year} {time}", rng.pick(DAYS)),
        5 => format!(
            "{} {mon} {day} {year} {time} GMT+0000 (Coordinated Universal Time)",
            rng.pick(DAYS)
        ),
        6 => format!("{month}{sep}{day}{sep}{year}"),
        7 => format!("{time} {mon}{sep}{day}{sep}{year}"),
        _ => format!("{year}-{mon}-{day} {time}"),
    };
    if rng.chance(30) {
        s = s.trim_end().to_string();
    }
    if rng.chance(10) {
        s += &junk(rng);
    }
    if rng.chance(8) {
        s.insert_str(0, &junk(rng));
    }
    s
}

/// Random tokens of every kind, so the legacy reader's state machine meets orders no template
/// thought of.
fn soup(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..1 + rng.below(9) {
        match rng.below(10) {
            0..=3 => {
                let len = [1, 1, 2, 2, 2, 3, 4, 4, 5, 6, 9, 11][rng.below(12)];
                s += &rng.digits(len);
            }
            4 | 5 => s += rng.pick(WORDS),
            6 | 7 => s += rng.pick(PUNCT),
            _ => s += rng.pick(SPACES),
        }
    }
    s
}

fn junk(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => rng.pick(SPACES).to_string(),
        1 => rng.pick(WORDS).to_string(),
        2 => rng.pick(PUNCT).to_string(),
        _ => soup(rng),
    }
}

/// The string with one character inserted, removed or replaced.
fn mutate(rng: &mut Rng, s: String) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let at = rng.below(chars.len() + 1);
    let pool: Vec<char> = [SPACES, WORDS, PUNCT][rng.below(3)]
        .iter()
        .flat_map(|w| w.chars())
        .chain("0123456789+-:.".chars())
        .collect();
    let c = pool[rng.below(pool.len())];
    match rng.below(3) {
        0 => chars.insert(at, c),
        1 if at < chars.len() => {
            chars.remove(at);
        }
        _ if at < chars.len() => chars[at] = c,
        _ => chars.push(c),
    }
    chars.into_iter().collect()
}

/// The fixed strings every run checks, besides the generated ones.
fn fixed_strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        " ",
        "0",
        "00",
        "000",
        "0000",
        "00000",
        "000000",
        "1",
        "12",
        "123",
        "1234",
        "12345",
        "123456",
        "1772600767000",
        "-1",
        "+1",
        "(",
        ")",
        "()",
        "-000000",
        "+000000",
        "-000000-01-01",
        "+000000-01-01",
        "T",
        "Z",
        "am",
        "March",
        "2026-",
        "2026--01",
        "2026-1-1",
        "2026-01-1",
        "2026-001-01",
        "March 4 2026 10:00:00:00",
        "10:00:00.123.456 March 4 2026",
        "March 4 2026 10:20.30.40",
        "4::5 March 2026",
        "2026 March 4 10:00 +:",
        "2026 March 4 10:00 +05:30:15",
        "2026 March 4 10 am",
        "2026 March 4 am 10",
        "2026 March 4 GMT-",
        "GMT 2026 March 4",
        "March 4 2026 (",
        "March 4 2026 ((a)",
        "March 4 2026 (a))",
        "March 4 2026 12:00 am",
        "March 4 2026 12:00 pm",
        "March 4 2026 0 pm",
        "4 March 2026 24:00",
        "4 March 2026 24:00:01",
        "Jan 32 2026",
        "Feb 30 2026",
        "0/0/0",
        "13/1/2026",
        "1/13/2026",
        "31/12/2026",
        "2026/12/31 23:59:59.999",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for n in 0..=31 {
        v.push(format!("{n}/{n}/{n}"));
        v.push(format!("March {n}"));
    }
    v
}

/// What Node's `Date.parse` gives for each string (TZ=UTC), or `None` when `node` cannot be run.
fn node_answers(strings: &[String]) -> Option<Vec<Option<i64>>> {
    const SCRIPT: &str = r#"
        let input = "";
        process.stdin.setEncoding("utf8");
        process.stdin.on("data", (d) => (input += d));
        process.stdin.on("end", () => {
            const out = JSON.parse(input).map((s) => {
                const t = Date.parse(s);
                return Number.isNaN(t) ? null : t;
            });
            process.stdout.write(JSON.stringify(out));
        });
    "#;
    let mut child = match Command::new("node")
        .env("TZ", "UTC")
        .args(["-e", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot start node: {e}"),
    };
    let input = serde_json::to_vec(strings).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Written from another thread so a full output pipe cannot stall the input.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("node runs");
    writer.join().unwrap().expect("node reads its input");
    assert!(output.status.success(), "node failed: {}", output.status);
    Some(serde_json::from_slice(&output.stdout).expect("node answers a JSON array"))
}

#[test]
fn parse_agrees_with_node_on_generated_strings() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut strings = fixed_strings();
    while strings.len() < 100_000 {
        strings.push(generate(&mut rng));
    }
    let Some(answers) = node_answers(&strings) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "node is required in CI for the Date.parse differential test"
        );
        println!("js date differential: skipped, `node` is not installed");
        return;
    };
    assert_eq!(answers.len(), strings.len());
    let differ: Vec<_> = strings
        .iter()
        .zip(&answers)
        .filter(|(s, want)| parse(s) != **want)
        .collect();
    let accepted = answers.iter().filter(|a| a.is_some()).count();
    println!(
        "js date differential: {} strings, {} agree, {} differ ({accepted} accepted by node)",
        strings.len(),
        strings.len() - differ.len(),
        differ.len()
    );
    for (s, want) in differ.iter().take(20) {
        println!("  {s:?}: node {want:?}, parse {:?}", parse(s));
    }
    assert!(
        differ.is_empty(),
        "{} strings read differently from node",
        differ.len()
    );
}
