use super::{from_number, parse};
use std::io::Write;
use std::process::{Command, Stdio};

/// Each string and what Node 20's `Date.parse` (TZ=UTC) gives for it, `None` for NaN.
fn check(cases: &[(&str, Option<i64>)]) {
    for &(s, want) in cases {
        assert_eq!(parse(s), want, "Date.parse({s:?})");
    }
}

#[test]
fn iso_forms_read_as_v8_reads_them() {
    check(&[
        ("2026-03-04T05:06:07.891Z", Some(1_772_600_767_891)),
        ("+002026-03-04T05:06:07Z", Some(1_772_600_767_000)),
        ("-002026-03-04T05:06:07Z", Some(-126_096_202_433_000)),
        ("2026-03-04T05:06:07+0530", Some(1_772_580_967_000)),
        ("2026-03-04T05:06:07+05:30", Some(1_772_580_967_000)),
        ("2026-03-04T05:06:07-01:00", Some(1_772_604_367_000)),
        ("2026-03-04T05:06Z", Some(1_772_600_760_000)),
        ("2026-03-04T24:00:00Z", Some(1_772_668_800_000)),
        ("2026-03-04T24:00", Some(1_772_668_800_000)),
        ("2026-02-30", Some(1_772_409_600_000)),
        ("2026-03", Some(1_772_323_200_000)),
        ("2026", Some(1_767_225_600_000)),
        ("2026T10:00Z", Some(1_767_261_600_000)),
        ("2026-03-04T05:06:07", Some(1_772_600_767_000)),
        ("2026-03-04t05:06:07z", Some(1_772_600_767_000)),
        ("2026-03-04 05:06:07", Some(1_772_600_767_000)),
        // Fraction digits beyond three are cut, not rounded; the value keeps at most nine
        // digits after leading zeros, which V8 then scales by the whole length.
        (
            "2026-03-04T05:06:07.1234567890123Z",
            Some(1_772_600_767_123),
        ),
        ("2026-03-04T05:06:07.9Z", Some(1_772_600_767_900)),
        ("2026-01-01T00:00:00.0001234567Z", Some(1_767_225_600_001)),
        ("+275760-09-13T00:00:00Z", Some(8_640_000_000_000_000)),
        ("-271821-04-20T00:00:00Z", Some(-8_640_000_000_000_000)),
        ("0000-01-01", Some(-62_167_219_200_000)),
        // Not ISO any more, so the legacy reader's two-digit years apply.
        ("0049-01-01T00:00:00.000+2", None),
    ]);
}

#[test]
fn iso_mistakes_are_refused() {
    check(&[
        (" 2026-01-01T00:00:00Z", None),
        ("2026-01-01T00:00:60Z", None),
        ("2026-01-01T24:00:01Z", None),
        ("2026-01-01T24:00:00.001Z", None),
        ("2026-01-01T00:60Z", None),
        ("2026-01-01T25:00Z", None),
        ("2026-01-01T00:00+24:00", None),
        ("2026-01-01T00:00+0060", None),
        ("2026-01-01T00:00:00Zjunk", None),
        ("2026-01-01T", None),
        ("2026-13-01", None),
        ("+275760-09-13T00:00:00.001Z", None),
        ("-271821-04-19T23:59:59.999Z", None),
        ("1e21", None),
        // A digit string is a year (of its first nine significant digits), and far too late.
        ("1772600767000", None),
        ("", None),
    ]);
}

#[test]
fn legacy_forms_read_as_v8_reads_them() {
    check(&[
        ("March 4, 2026", Some(1_772_582_400_000)),
        ("March 4", Some(983_664_000_000)), // year 1 → 2001
        ("4 Mar 2026 10:00", Some(1_772_618_400_000)),
        ("2026/03/04", Some(1_772_582_400_000)),
        ("03/04/2026 10:00 PM EST", Some(1_772_679_600_000)),
        ("Wed, 04 Mar 2026 05:06:07 GMT", Some(1_772_600_767_000)),
        (
            "Wed Mar 04 2026 05:06:07 GMT+0000 (Coordinated Universal Time)",
            Some(1_772_600_767_000),
        ),
        ("3/4/99", Some(920_505_600_000)),
        ("3/4/49", Some(2_498_428_800_000)),
        ("12:00 am 2026-01-01", Some(1_767_225_600_000)),
        ("2026-01-01 12:30 pm", Some(1_767_270_600_000)),
        ("2026-01-01 10:00 GMT+0530", Some(1_767_241_800_000)),
        ("2026-01-01 10:00 +5", Some(1_767_243_600_000)),
        ("2026-01-01 10:00 PST", Some(1_767_290_400_000)),
        // `-000000` is no year: its digits are dropped and the rest is month 1, day 1, year 1.
        ("-000000-01-01", Some(978_307_200_000)),
        // The offset sum wraps at 2^32 seconds and must end up below 2^31.
        ("2026-01-01 00:00 +596523:", Some(-380_257_200_000)),
        ("2026-01-01 00:00 +1193047:", Some(1_767_223_696_000)),
    ]);
}

#[test]
fn legacy_mistakes_are_refused() {
    check(&[
        ("2026-01-01 00:00 +596524:", None),
        ("2026-01-01 10:00 +12345", None),
        ("2026-01-01 13:00 pm", None),
        ("2026-01-01 10:00 )", None),
        ("yesterday", None),
        ("2026 yesterday", None),
        ("tomorrow2026", None),
        ("1/2/3/4", None),
        ("10:00", None),
    ]);
}

#[test]
fn whitespace_is_javascripts_and_line_separators_are_letters() {
    check(&[
        ("\u{a0}March 4, 2026", Some(1_772_582_400_000)),
        ("\u{feff}March\u{3000}4, 2026", Some(1_772_582_400_000)),
        ("March 4 2026 10:00 GMT\u{a0}", Some(1_772_618_400_000)),
        ("March 4 2026 10:00 GMT\u{2028}", None),
        ("March 4 2026 10:00 GMT\u{2029}", None),
        ("March 4 2026 10:00 GMT\u{85}", None),
        ("March 4 2026 10:00 GMT\u{200b}", None),
        // A word may start with any of them, and then it is no month name.
        ("\u{180e}March 4 2026", None),
        ("2026-01-01\0junk", Some(1_767_225_600_000)),
    ]);
}

#[test]
fn numbers_are_unix_milliseconds_truncated_toward_zero() {
    assert_eq!(from_number(1_772_600_767_891.9), Some(1_772_600_767_891));
    assert_eq!(from_number(-1.9), Some(-1));
    assert_eq!(from_number(-0.5), Some(0));
    assert_eq!(from_number(8.64e15), Some(8_640_000_000_000_000));
    assert_eq!(from_number(-8.64e15), Some(-8_640_000_000_000_000));
    assert_eq!(from_number(8.64e15 + 1.0), None);
    assert_eq!(from_number(1e21), None);
    assert_eq!(from_number(f64::NAN), None);
    assert_eq!(from_number(f64::INFINITY), None);
    assert_eq!(from_number(f64::NEG_INFINITY), None);
}

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

/// The shortcut for the common shape answers exactly as the full reader wherever it answers,
/// and answers for the ordinary timestamps Segment sends.
#[test]
fn the_common_shape_shortcut_agrees_with_the_full_reader() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut answered = 0;
    for _ in 0..50_000 {
        let s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}Z",
            next(10_000),
            next(14),
            next(33),
            next(26),
            next(62),
            next(62),
            [String::new(), format!(".{:03}", next(1000))][next(2) as usize],
        );
        let full = super::parse_full(&s);
        if let Some(ms) = super::common_utc(&s) {
            assert_eq!(Some(ms), full, "{s}");
            answered += 1;
        }
    }
    assert!(answered > 10_000, "the shortcut answered {answered} times");
    assert_eq!(
        super::common_utc("2026-03-04T05:06:07.891Z"),
        Some(1_772_600_767_891)
    );
    assert_eq!(super::common_utc("2026-02-30T00:00:00Z"), None);
    assert_eq!(super::common_utc("2026-03-04T24:00:00Z"), None);
}
