//! The TSIG key file: BIND's format, as `tsig-keygen` prints it and `nsupdate -k` reads it.
//!
//! ```text
//! key "acme-mark" {
//!     algorithm hmac-sha256;
//!     secret "base64...";
//! };
//! ```
//!
//! Several `key` statements per file; `#`, `//` and `/* */` comments. Algorithms:
//! hmac-sha1, hmac-sha256, hmac-sha384, hmac-sha512 (hmac-md5 is refused). Every error names
//! the file and line. The file must not be readable or writable by others nor writable by its
//! group ([`load`] checks; mode 0600 or 0640). No secret is ever printed: the `Debug`
//! implementations show names and algorithms only, and errors never quote a secret.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use domain::base::ToName;
use domain::tsig::{Algorithm, Key, KeyName, KeyStore};

/// A key file error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileError {
    pub file: PathBuf,
    /// 1-based line, when the error is at one.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// One loaded key.
#[derive(Clone)]
pub struct NamedKey {
    /// The key's name, lower-case, without the trailing dot.
    pub name: String,
    /// The line of its `key` statement.
    pub line: usize,
    pub key: Arc<Key>,
}

impl fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedKey")
            .field("name", &self.name)
            .field("algorithm", &self.key.algorithm().to_string())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The keys UPDATE requests may be signed with; a `domain` [`KeyStore`].
#[derive(Clone, Default, Debug)]
pub struct Keys {
    keys: Vec<NamedKey>,
}

impl Keys {
    /// The keys, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &NamedKey> {
        self.keys.iter()
    }

    /// The key called `name` (any case, trailing dot optional).
    pub fn get(&self, name: &str) -> Option<&NamedKey> {
        let name = name.strip_suffix('.').unwrap_or(name);
        self.keys.iter().find(|k| k.name.eq_ignore_ascii_case(name))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Builds a key set from `(name, algorithm, secret)` (tests and fuzzing).
    pub fn from_secrets(list: &[(&str, Algorithm, &[u8])]) -> Result<Keys, String> {
        let mut keys = Vec::new();
        for (i, (name, alg, secret)) in list.iter().enumerate() {
            keys.push(make_key(name, *alg, secret, i + 1)?);
        }
        Ok(Keys { keys })
    }
}

impl KeyStore for Keys {
    type Key = Arc<Key>;

    fn get_key<N: ToName>(&self, name: &N, algorithm: Algorithm) -> Option<Arc<Key>> {
        self.keys
            .iter()
            .find(|k| k.key.name().name_eq(name) && k.key.algorithm() == algorithm)
            .map(|k| k.key.clone())
    }
}

/// The lower-case text of a key name, without the trailing dot.
pub fn key_name_text(name: &impl ToName) -> String {
    let s = name.to_vec().to_string().to_ascii_lowercase();
    s.strip_suffix('.').map(str::to_string).unwrap_or(s)
}

fn make_key(name: &str, alg: Algorithm, secret: &[u8], line: usize) -> Result<NamedKey, String> {
    let text = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if text.is_empty() {
        return Err("empty key name".into());
    }
    let dname: KeyName = format!("{text}.")
        .parse()
        .map_err(|e| format!("key name {text:?} is not a domain name: {e}"))?;
    if secret.is_empty() {
        return Err(format!("key {text:?} has an empty secret"));
    }
    let key = Key::new(alg, secret, dname, None, None).map_err(|e| format!("key {text:?}: {e}"))?;
    Ok(NamedKey {
        name: text,
        line,
        key: Arc::new(key),
    })
}

/// Reads the key file at `path`, refusing one that others may read (see the module docs).
pub fn load(path: &Path) -> Result<Keys, KeyFileError> {
    let err = |line, message: String| KeyFileError {
        file: path.to_path_buf(),
        line,
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(None, format!("cannot read: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o027 != 0 {
            return Err(err(
                None,
                format!(
                    "mode {mode:04o} lets other users read or change the TSIG secrets: \
                     chmod 0600 (or 0640 with the service's group) {}",
                    path.display()
                ),
            ));
        }
    }
    let text = std::fs::read(path).map_err(|e| err(None, format!("cannot read: {e}")))?;
    let text = String::from_utf8(text).map_err(|_| err(None, "is not UTF-8 text".into()))?;
    parse(path, &text)
}

/// A token of the file and its line.
#[derive(Debug, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a str),
    Quoted(&'a str),
    Open,
    Close,
    Semi,
}

fn tokenize<'a>(path: &Path, text: &'a str) -> Result<Vec<(Tok<'a>, usize)>, KeyFileError> {
    let err = |line, message: &str| KeyFileError {
        file: path.to_path_buf(),
        line: Some(line),
        message: message.to_string(),
    };
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            _ if c.is_ascii_whitespace() => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = line;
                i += 2;
                loop {
                    if i + 1 >= b.len() {
                        return Err(err(start, "unterminated /* comment"));
                    }
                    if b[i] == b'*' && b[i + 1] == b'/' {
                        i += 2;
                        break;
                    }
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            b'{' | b'}' | b';' => {
                out.push((
                    match c {
                        b'{' => Tok::Open,
                        b'}' => Tok::Close,
                        _ => Tok::Semi,
                    },
                    line,
                ));
                i += 1;
            }
            b'"' => {
                let start = i + 1;
                let Some(len) = b[start..].iter().position(|&x| x == b'"' || x == b'\n') else {
                    return Err(err(line, "unterminated quoted string"));
                };
                if b[start + len] == b'\n' {
                    return Err(err(line, "unterminated quoted string"));
                }
                out.push((Tok::Quoted(&text[start..start + len]), line));
                i = start + len + 1;
            }
            _ => {
                let start = i;
                while i < b.len()
                    && !b[i].is_ascii_whitespace()
                    && !matches!(b[i], b'{' | b'}' | b';' | b'"' | b'#')
                {
                    i += 1;
                }
                out.push((Tok::Word(&text[start..i]), line));
            }
        }
    }
    Ok(out)
}

/// Parses key file text (`path` is for messages).
pub fn parse(path: &Path, text: &str) -> Result<Keys, KeyFileError> {
    let err = |line: usize, message: String| KeyFileError {
        file: path.to_path_buf(),
        line: Some(line),
        message,
    };
    let toks = tokenize(path, text)?;
    let last_line = toks.last().map(|t| t.1).unwrap_or(1);
    let mut it = toks.into_iter().peekable();
    let mut keys: Vec<NamedKey> = Vec::new();
    // The next token, or an error naming what was expected at the end of the file.
    macro_rules! next {
        ($what:expr) => {
            match it.next() {
                Some(t) => t,
                None => {
                    return Err(err(
                        last_line,
                        format!("file ends where {} was expected", $what),
                    ))
                }
            }
        };
    }
    while let Some((tok, line)) = it.next() {
        match tok {
            Tok::Word(w) if w.eq_ignore_ascii_case("key") => {}
            Tok::Word(w) => {
                return Err(err(
                    line,
                    format!("expected a `key` statement, found {:?}", short(w)),
                ))
            }
            other => {
                return Err(err(
                    line,
                    format!("expected a `key` statement, found {}", what(&other)),
                ))
            }
        }
        let name = match next!("the key's name") {
            (Tok::Word(w) | Tok::Quoted(w), _) => w,
            (other, l) => {
                return Err(err(
                    l,
                    format!("expected the key's name, found {}", what(&other)),
                ))
            }
        };
        match next!("`{`") {
            (Tok::Open, _) => {}
            (other, l) => {
                return Err(err(
                    l,
                    format!("expected `{{` after key {name:?}, found {}", what(&other)),
                ))
            }
        }
        let mut algorithm: Option<Algorithm> = None;
        let mut secret: Option<Vec<u8>> = None;
        loop {
            let (tok, l) = next!("`}`");
            let field = match tok {
                Tok::Close => break,
                Tok::Word(w) => w,
                other => {
                    return Err(err(
                        l,
                        format!(
                            "expected `algorithm`, `secret` or `}}`, found {}",
                            what(&other)
                        ),
                    ))
                }
            };
            let (value, vl) = next!(format!("a value for {field}"));
            let value = match value {
                Tok::Word(v) | Tok::Quoted(v) => v,
                other => {
                    return Err(err(
                        vl,
                        format!("expected a value for {field}, found {}", what(&other)),
                    ))
                }
            };
            match field.to_ascii_lowercase().as_str() {
                "algorithm" => {
                    if algorithm.is_some() {
                        return Err(err(l, format!("key {name:?} sets its algorithm twice")));
                    }
                    let lower = value.to_ascii_lowercase();
                    let lower = lower.strip_suffix('.').unwrap_or(&lower);
                    algorithm = Some(lower.parse().map_err(|_| {
                        err(
                            vl,
                            format!(
                                "key {name:?}: algorithm {:?} is not supported (use hmac-sha256 \
                                 or hmac-sha512; hmac-sha1 and hmac-sha384 are accepted too)",
                                short(value)
                            ),
                        )
                    })?);
                }
                "secret" => {
                    if secret.is_some() {
                        return Err(err(l, format!("key {name:?} sets its secret twice")));
                    }
                    let bytes: Vec<u8> = domain::utils::base64::decode(value).map_err(|_| {
                        err(vl, format!("key {name:?}: the secret is not valid base64"))
                    })?;
                    secret = Some(bytes);
                }
                _ => {
                    return Err(err(
                        l,
                        format!(
                        "key {name:?}: unknown setting {:?} (a key has `algorithm` and `secret`)",
                        short(field)
                    ),
                    ))
                }
            }
            match next!("`;`") {
                (Tok::Semi, _) => {}
                (other, l) => {
                    return Err(err(
                        l,
                        format!("expected `;` after {field}, found {}", what(&other)),
                    ))
                }
            }
        }
        // BIND wants the `;` after `}`; tolerate its absence at the end of the file.
        if let Some((Tok::Semi, _)) = it.peek() {
            it.next();
        }
        let Some(algorithm) = algorithm else {
            return Err(err(line, format!("key {name:?} has no algorithm")));
        };
        let Some(secret) = secret else {
            return Err(err(line, format!("key {name:?} has no secret")));
        };
        let key = make_key(name, algorithm, &secret, line).map_err(|m| err(line, m))?;
        if let Some(first) = keys.iter().find(|k| k.name == key.name) {
            return Err(err(
                line,
                format!(
                    "key {:?} is defined twice (first at line {})",
                    key.name, first.line
                ),
            ));
        }
        keys.push(key);
    }
    Ok(Keys { keys })
}

/// A token described for a message (never a quoted string's text: it may be a secret).
fn what(t: &Tok<'_>) -> String {
    match t {
        // A word is quoted only when it cannot be (part of) an unquoted secret.
        Tok::Word(w)
            if w.len() <= 16
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'.') =>
        {
            format!("{w:?}")
        }
        Tok::Word(_) => "a word".into(),
        Tok::Quoted(_) => "a quoted string".into(),
        Tok::Open => "`{`".into(),
        Tok::Close => "`}`".into(),
        Tok::Semi => "`;`".into(),
    }
}

/// At most 32 characters of a word, for messages.
fn short(w: &str) -> String {
    let mut s: String = w.chars().take(32).collect();
    if s.len() < w.len() {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests;
