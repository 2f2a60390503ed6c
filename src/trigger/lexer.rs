//! A port of `@segment/fql-ts`'s lexer (1.10), which `destination-subscriptions` feeds into its
//! parser. It is ported character for character, bugs included, because those bugs decide what
//! a trigger means: a closing quote is only consumed when a terminator follows it, `!=` needs a
//! space after it, a keyword prefix running into the end of input swallows characters, and so on.
//! It works on UTF-16 code units, as the JavaScript original does.

/// Kinds of token, named as in `fql-ts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Ident,
    Dot,
    Operator,
    Conditional,
    Str,
    Number,
    Null,
    BrackLeft,
    BrackRight,
    ParenLeft,
    ParenRight,
    Comma,
    Eos,
}

/// A token: its kind, its `value` exactly as `fql-ts` spells it, and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) value: String,
    /// Offset of the token's first code unit, in UTF-16 code units.
    pub(super) at: usize,
}

impl Token {
    pub(super) fn new(kind: Kind, value: impl Into<String>, at: usize) -> Token {
        Token {
            kind,
            value: value.into(),
            at,
        }
    }
}

/// A lexing failure, at an offset in UTF-16 code units.
#[derive(Debug)]
pub(super) struct LexError {
    pub(super) message: String,
    pub(super) at: usize,
}

// The reference caps literals so a runaway loop cannot hang; the caps are part of what parses.
const MAXIMUM_IDENT_LENGTH: usize = 100_000;
const MAXIMUM_NUMBER_LENGTH: usize = 100_000;
const MAXIMUM_STRING_LENGTH: usize = 100_000;

fn is(c: Option<u16>, ascii: u8) -> bool {
    c == Some(u16::from(ascii))
}

fn is_alpha(c: Option<u16>) -> bool {
    c.is_some_and(|c| u8::try_from(c).is_ok_and(|b| b.is_ascii_alphabetic()))
}

fn is_digit(c: Option<u16>) -> bool {
    c.is_some_and(|c| u8::try_from(c).is_ok_and(|b| b.is_ascii_digit()))
}

fn is_whitespace(c: Option<u16>) -> bool {
    is(c, b' ') || is(c, b'\t') || is(c, b'\n')
}

fn is_ident(c: Option<u16>) -> bool {
    is_alpha(c) || is_digit(c) || is(c, b'_') || is(c, b'-') || is(c, b'\\')
}

/// End of input counts as a terminator.
fn is_terminator(c: Option<u16>) -> bool {
    c.is_none() || is_whitespace(c) || is(c, b',') || is(c, b']') || is(c, b')')
}

/// Renders the character at `pos` for an error message. A position on the second half of a
/// surrogate pair shows the whole character.
fn show(units: &[u16], pos: usize) -> String {
    let is_low = |u: u16| (0xdc00..0xe000).contains(&u);
    let is_high = |u: u16| (0xd800..0xdc00).contains(&u);
    let start = match (
        pos.checked_sub(1).and_then(|p| units.get(p)),
        units.get(pos),
    ) {
        (Some(&high), Some(&low)) if is_high(high) && is_low(low) => pos - 1,
        _ => pos,
    };
    let Some(first) =
        char::decode_utf16(units.get(start..).unwrap_or_default().iter().copied()).next()
    else {
        return "end of input".to_owned();
    };
    match first {
        Ok('`') => "`` ` ``".to_owned(),
        Ok(c) => format!("`{c}`"),
        Err(e) => format!("`\\u{{{:x}}}`", e.unpaired_surrogate()),
    }
}

struct Lexer<'a> {
    units: &'a [u16],
    pos: usize,
}

/// Splits `units` into tokens, ending with an end-of-input token.
pub(super) fn lex(units: &[u16]) -> Result<Vec<Token>, LexError> {
    Lexer { units, pos: 0 }.lex()
}

impl Lexer<'_> {
    /// Reading at the end does not move, like `fql-ts`'s `Reader.forward`.
    fn next(&mut self) -> Option<u16> {
        let c = self.units.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn peek(&self) -> Option<u16> {
        self.units.get(self.pos).copied()
    }

    fn backup(&mut self, count: usize) {
        self.pos = self.pos.saturating_sub(count);
    }

    /// `fql-ts`'s `accept`: consumes `word` only when a terminator follows it. Reaching the end
    /// of input returns false *without* backing up, which loses the characters read so far.
    fn accept(&mut self, word: &[u8]) -> bool {
        let mut read = 0;
        let mut same = true;
        for &expected in word {
            let Some(c) = self.next() else {
                return false;
            };
            read += 1;
            same &= c == u16::from(expected);
            if is_terminator(Some(c)) {
                break;
            }
        }
        if same && read == word.len() && is_terminator(self.peek()) {
            return true;
        }
        self.backup(read);
        false
    }

    fn error(&self, message: impl Into<String>, at: usize) -> LexError {
        LexError {
            message: message.into(),
            at,
        }
    }

    fn text(units: &[u16]) -> String {
        String::from_utf16_lossy(units)
    }

    fn lex(mut self) -> Result<Vec<Token>, LexError> {
        let mut tokens = Vec::new();
        loop {
            let at = self.pos;
            let Some(c) = self.next() else {
                tokens.push(Token::new(Kind::Eos, "eos", at));
                return Ok(tokens);
            };
            let cu = Some(c);
            if is_whitespace(cu) {
                continue;
            }
            if is(cu, b'!') {
                let next = self.peek();
                if is_alpha(next) || is(next, b'(') {
                    tokens.push(Token::new(Kind::Operator, "!", at));
                    continue;
                }
            }
            if is_alpha(cu)
                || [b'!', b'=', b'>', b'<', b'\\', b'_']
                    .iter()
                    .any(|&b| is(cu, b))
            {
                tokens.push(self.lex_operator_or_conditional(c, at)?);
                continue;
            }
            if is_digit(cu) || is(cu, b'-') || is(cu, b'+') {
                tokens.push(self.lex_number(c, at)?);
                continue;
            }
            if is(cu, b'"') || is(cu, b'\'') {
                tokens.push(self.lex_string(c, at)?);
                continue;
            }
            let simple = match u8::try_from(c).unwrap_or(0) {
                b'.' => Some((Kind::Dot, ".")),
                b'[' => Some((Kind::BrackLeft, "[")),
                b']' => Some((Kind::BrackRight, "]")),
                b',' => Some((Kind::Comma, ",")),
                b'(' => Some((Kind::ParenLeft, "(")),
                b')' => Some((Kind::ParenRight, ")")),
                _ => None,
            };
            match simple {
                Some((kind, value)) => tokens.push(Token::new(kind, value, at)),
                None => {
                    return Err(
                        self.error(format!("unexpected character {}", show(self.units, at)), at)
                    );
                }
            }
        }
    }

    fn lex_string(&mut self, quote: u16, at: usize) -> Result<Token, LexError> {
        let mut content: Vec<u16> = Vec::new();
        while self.peek() != Some(quote) {
            let Some(c) = self.next() else {
                return Err(self.error("unterminated string", at));
            };
            content.push(c);
            if content.len() >= MAXIMUM_STRING_LENGTH {
                return Err(self.error("string is too long", at));
            }
        }
        // Only eats the closing quote when a terminator follows; otherwise that quote opens
        // the next string (`"a"b"` lexes as `"a"` then `"b"`).
        self.accept(if quote == u16::from(b'"') {
            b"\""
        } else {
            b"'"
        });
        let mut value = Vec::with_capacity(content.len() + 2);
        value.push(quote);
        value.extend_from_slice(&content);
        value.push(quote);
        Ok(Token::new(Kind::Str, Self::text(&value), at))
    }

    fn lex_number(&mut self, first: u16, at: usize) -> Result<Token, LexError> {
        let mut digits: Vec<u16> = vec![first];
        let mut coming = self.peek();
        let mut is_decimal = false;
        while is_digit(coming) || is(coming, b'.') {
            let dot_at = self.pos;
            if let Some(c) = self.next() {
                digits.push(c);
            }
            if is(coming, b'.') {
                if is_terminator(self.peek()) {
                    return Err(self.error("expected a digit after the decimal point", dot_at));
                }
                if is_decimal {
                    return Err(self.error("a number has more than one decimal point", dot_at));
                }
                is_decimal = true;
            }
            if digits.len() > MAXIMUM_NUMBER_LENGTH {
                return Err(self.error("number is too long", at));
            }
            coming = self.peek();
        }
        Ok(Token::new(Kind::Number, Self::text(&digits), at))
    }

    fn lex_operator_or_conditional(&mut self, first: u16, at: usize) -> Result<Token, LexError> {
        let operator = |value: &str| Ok(Token::new(Kind::Operator, value, at));
        match u8::try_from(first).unwrap_or(0) {
            b'=' => operator("="),
            b'!' => {
                if self.accept(b"=") {
                    operator("!=")
                } else {
                    Err(self.error(
                        format!(
                            "expected `=` and then a space after `!`, found {}",
                            show(self.units, self.pos)
                        ),
                        at,
                    ))
                }
            }
            b'a' if self.accept(b"nd") => Ok(Token::new(Kind::Conditional, "and", at)),
            b'o' if self.accept(b"r") => Ok(Token::new(Kind::Conditional, "or", at)),
            b'n' if self.accept(b"ull") => Ok(Token::new(Kind::Null, "null", at)),
            b'<' if self.accept(b"=") => operator("<="),
            b'>' if self.accept(b"=") => operator(">="),
            b'<' => operator("<"),
            b'>' => operator(">"),
            _ => self.lex_ident(first, at),
        }
    }

    fn lex_ident(&mut self, first: u16, at: usize) -> Result<Token, LexError> {
        let mut value: Vec<u16> = Vec::new();
        let mut c = first;
        loop {
            // A backslash escapes any one code unit, which then joins the identifier.
            if c == u16::from(b'\\') {
                let escape_at = self.pos.saturating_sub(1);
                match self.next() {
                    Some(escaped) => c = escaped,
                    None => {
                        return Err(self.error("expected a character after `\\`", escape_at));
                    }
                }
            }
            value.push(c);
            if value.len() >= MAXIMUM_IDENT_LENGTH {
                return Err(self.error("identifier is too long", at));
            }
            if !is_ident(self.peek()) {
                break;
            }
            match self.next() {
                Some(n) => c = n,
                None => break,
            }
        }
        let coming = self.peek();
        let ends_well =
            is_terminator(coming) || [b'.', b'(', b'=', b'!'].iter().any(|&b| is(coming, b));
        if !ends_well {
            return Err(self.error(
                format!(
                    "unexpected {} after `{}`; put a space or an operator after a field name",
                    show(self.units, self.pos),
                    Self::text(&value)
                ),
                self.pos,
            ));
        }
        Ok(Token::new(Kind::Ident, Self::text(&value), at))
    }
}
