//! TLS settings beyond the key files: how a client certificate becomes a principal
//! (`ssl.principal.mapping.rules`, Kafka's syntax) and how often the key files are checked
//! for a new certificate (`ssl.reload.interval.ms`).
//!
//! A rule list is comma-separated: `DEFAULT` (the distinguished name unchanged) or
//! `RULE:pattern/replacement/` with an optional `L` (lower case) or `U` (upper case) after
//! the last slash. Inside the pattern and the replacement `\` escapes the next character
//! (so `\/` is a slash and `\,` a comma of the pattern, not a rule separator, though a bare
//! comma is allowed too, as in Kafka). The first rule whose pattern matches the whole
//! distinguished name wins: its replacement, with `$1`.. standing for the pattern's groups,
//! is the name. When no rule matches, the client is refused.

use super::parse::{ConfigError, bad, parse_num};
use regex::Regex;

/// One mapping rule.
#[derive(Debug, Clone)]
enum Rule {
    Default,
    Map {
        pattern: Regex,
        /// Literal text and group references, in order.
        replacement: Vec<Piece>,
        case: Case,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Group(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// `ssl.principal.mapping.rules`, parsed.
#[derive(Debug, Clone)]
pub struct PrincipalRules {
    source: String,
    rules: Vec<Rule>,
}

impl PartialEq for PrincipalRules {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Default for PrincipalRules {
    fn default() -> Self {
        PrincipalRules {
            source: "DEFAULT".to_string(),
            rules: vec![Rule::Default],
        }
    }
}

/// Reads up to the next unescaped `/`; returns the text (escapes kept) and the rest after
/// the slash.
fn until_slash(s: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '/' => return Some((s.get(..i)?, s.get(i + 1..)?)),
            _ => {}
        }
    }
    None
}

/// A replacement as Java's `Matcher` reads it: `$N` a group, `\c` the character c.
fn replacement(text: &str, groups: usize) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => literal.push(chars.next().ok_or("a replacement ends with \\")?),
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let n: usize = digits
                    .parse()
                    .map_err(|_| "$ in a replacement must name a group ($1, $2, ...)")?;
                if n > groups {
                    return Err(format!(
                        "the replacement names group {n}, the pattern has {groups}"
                    ));
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Group(n));
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

impl PrincipalRules {
    /// Parses a rule list; an empty one is `DEFAULT`.
    pub fn parse(value: &str) -> Result<PrincipalRules, String> {
        let mut rules = Vec::new();
        let mut rest = value.trim_start();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) =
                    until_slash(after).ok_or("a RULE needs pattern/replacement/")?;
                let (text, after) =
                    until_slash(after).ok_or("a RULE needs pattern/replacement/")?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, after.get(1..).unwrap_or_default()),
                    Some('U') => (Case::Upper, after.get(1..).unwrap_or_default()),
                    _ => (Case::Keep, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("pattern {pattern:?}: {e}"))?;
                let groups = pattern.captures_len().saturating_sub(1);
                rules.push(Rule::Map {
                    replacement: replacement(text, groups)?,
                    pattern,
                    case,
                });
                rest = after;
            } else {
                return Err(format!(
                    "expected DEFAULT or RULE:pattern/replacement/ at {rest:?}"
                ));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("expected a comma before {rest:?}")),
            }
        }
        if rules.is_empty() {
            return Ok(PrincipalRules::default());
        }
        Ok(PrincipalRules {
            source: value.to_string(),
            rules,
        })
    }

    /// The name the first matching rule gives `dn`; `None` when no rule matches.
    pub fn apply(&self, dn: &str) -> Option<String> {
        for rule in &self.rules {
            let (pattern, pieces, case) = match rule {
                Rule::Default => return Some(dn.to_string()),
                Rule::Map {
                    pattern,
                    replacement,
                    case,
                } => (pattern, replacement, case),
            };
            let Some(groups) = pattern.captures(dn) else {
                continue;
            };
            let mut name = String::new();
            for piece in pieces {
                match piece {
                    Piece::Text(t) => name.push_str(t),
                    Piece::Group(n) => {
                        name.push_str(groups.get(*n).map(|m| m.as_str()).unwrap_or_default())
                    }
                }
            }
            return Some(match case {
                Case::Keep => name,
                Case::Lower => name.to_lowercase(),
                Case::Upper => name.to_uppercase(),
            });
        }
        None
    }
}

/// The TLS settings of [`super::SecurityConfig`] kept here.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    pub principal_rules: PrincipalRules,
    /// How often the key and trust files are checked for a change (0: never).
    pub reload_interval_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            principal_rules: PrincipalRules::default(),
            reload_interval_ms: 30_000,
        }
    }
}

impl TlsConfig {
    pub const KEYS: &'static [&'static str] =
        &["ssl.principal.mapping.rules", "ssl.reload.interval.ms"];

    /// Sets one of [`Self::KEYS`]; `Ok(false)` when the key is not one of them.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "ssl.principal.mapping.rules" => {
                self.principal_rules =
                    PrincipalRules::parse(value).map_err(|e| bad(key, value, &e))?
            }
            "ssl.reload.interval.ms" => self.reload_interval_ms = parse_num(key, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DN: &str = "CN=alice,OU=eng,O=Example,C=DE";

    fn map(rules: &str, dn: &str) -> Option<String> {
        PrincipalRules::parse(rules).unwrap().apply(dn)
    }

    #[test]
    fn default_keeps_the_distinguished_name() {
        assert_eq!(map("", DN).as_deref(), Some(DN));
        assert_eq!(map("DEFAULT", DN).as_deref(), Some(DN));
    }

    #[test]
    fn the_first_matching_rule_wins_with_its_groups_and_case() {
        let rules =
            "RULE:^CN=(.*?),OU=ops,.*$/ops-$1/, RULE:^CN=(.*?),OU=(.*?),.*$/$1@$2/U ,DEFAULT";
        assert_eq!(map(rules, DN).as_deref(), Some("ALICE@ENG"));
        assert_eq!(
            map(rules, "CN=bob,OU=ops,O=Example").as_deref(),
            Some("ops-bob")
        );
        assert_eq!(map(rules, "O=Other").as_deref(), Some("O=Other"));
        assert_eq!(
            map("RULE:^CN=(.*?),.*$/$1/L", "CN=Alice,O=X").as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn a_pattern_matches_the_whole_name_or_not_at_all() {
        // Kafka's Matcher.matches(): "CN=alice" alone does not match the longer name.
        assert_eq!(map("RULE:CN=alice/a/", DN), None);
        assert_eq!(map("RULE:CN=(\\w+),.*/$1/", DN).as_deref(), Some("alice"));
    }

    #[test]
    fn escapes_keep_slashes_and_commas_inside_a_rule() {
        let rules = "RULE:^CN=([^\\,]*)\\,O=a\\/b$/x\\/$1\\$/";
        assert_eq!(map(rules, "CN=z,O=a/b").as_deref(), Some("x/z$"));
    }

    #[test]
    fn bad_rule_lists_are_refused() {
        for bad in [
            "RULE:abc",
            "RULE:a/b",
            "DEFAULT DEFAULT",
            "RULE:a/b/X",
            "RULE:(/x/",
            "RULE:a/$2/",
            "RULE:a/$x/",
            "NONSENSE",
        ] {
            assert!(PrincipalRules::parse(bad).is_err(), "{bad}");
        }
        let mut c = TlsConfig::default();
        assert!(c.set("ssl.principal.mapping.rules", "RULE:a").is_err());
        assert!(c.set("ssl.reload.interval.ms", "-1").is_err());
        assert!(c.set("ssl.reload.interval.ms", "250").unwrap());
        assert_eq!(c.reload_interval_ms, 250);
        assert!(!c.set("other", "1").unwrap());
    }
}
