//! Docker credential helpers (`docker-credential-NAME` on `PATH`), run with Docker's protocol:
//! `get` and `erase` take the server URL on standard input, `store` takes
//! `{"ServerURL","Username","Secret"}`; `get` answers that JSON on standard output, and a helper
//! that says "credentials not found" means no credentials, not an error. A `Username` of
//! `<token>` makes the `Secret` an identity (OAuth2 refresh) token.
//!
//! Each run is bounded by a timeout (30 s; `$HOIST_CREDENTIAL_HELPER_TIMEOUT` seconds, for tests
//! and slow keychains), after which the helper, hoist's own child, is killed. Secrets never appear
//! in errors: a failing helper's message is shown only when it gave no credentials.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::transport::Credentials;

/// The user name under which a helper (and Docker's config) returns an identity token.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

/// The environment variable bounding each helper run, in seconds.
pub const TIMEOUT_ENV: &str = "HOIST_CREDENTIAL_HELPER_TIMEOUT";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of a helper's output read.
const MAX_OUTPUT: u64 = 1 << 20;

fn timeout() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s < 1e6)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// The program of helper `name`; names with a path separator are refused.
fn program(name: &str) -> Result<String> {
    if name.is_empty() || name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err(Error::Other(format!(
            "credential helper name {name:?} is not valid"
        )));
    }
    Ok(format!("docker-credential-{name}"))
}

/// True when `docker-credential-NAME` is an executable file on `PATH`.
pub fn installed(name: &str) -> bool {
    let Ok(prog) = program(name) else {
        return false;
    };
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(&prog)).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

struct Output {
    success: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `docker-credential-NAME ACTION` with `input` on standard input, within the timeout.
fn run(name: &str, action: &str, input: &[u8]) -> Result<Output> {
    let prog = program(name)?;
    let mut child = Command::new(&prog)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (it is not on PATH)"
            } else {
                ""
            };
            Error::io(
                format!("running credential helper {prog} {action}{hint}"),
                e,
            )
        })?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(MAX_OUTPUT).read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is judged by its exit status.
        let _ = stdin.write_all(input);
    }
    let limit = timeout();
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= limit => {
                // Our own child, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Other(format!(
                    "credential helper {prog} {action} did not finish within {limit:?} (it was \
                     stopped; ${TIMEOUT_ENV} sets the wait)"
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                return Err(Error::io(
                    format!("waiting for credential helper {prog}"),
                    e,
                ));
            }
        }
    };
    Ok(Output {
        success: status.success(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// A failed helper's own words (it gave no credentials, so they hold no secret), shortened.
fn message(o: &Output) -> String {
    let text = if o.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        &o.stderr
    } else {
        &o.stdout
    };
    let t = String::from_utf8_lossy(text);
    let t = t.trim();
    match t.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None => t.to_string(),
    }
}

/// `text` with `secret` replaced.
fn hide(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "<hidden>")
    }
}

fn is_not_found(o: &Output) -> bool {
    let m = message(o).to_ascii_lowercase();
    m.contains("credentials not found") || m.contains("not found in native keychain")
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(default)]
    username: String,
    #[serde(default)]
    secret: String,
}

/// `docker-credential-NAME get` for `server` (a registry host, or Docker Hub's
/// `https://index.docker.io/v1/`); `None` when the helper has none.
pub fn get(name: &str, server: &str) -> Result<Option<Credentials>> {
    let o = run(name, "get", server.as_bytes())?;
    if !o.success {
        if is_not_found(&o) {
            return Ok(None);
        }
        return Err(Error::Other(format!(
            "credential helper docker-credential-{name} get failed for {server}: {}",
            message(&o)
        )));
    }
    let a: Answer = serde_json::from_slice(&o.stdout).map_err(|_| {
        Error::Other(format!(
            "credential helper docker-credential-{name} get answered for {server} with something \
             that is not its JSON"
        ))
    })?;
    if a.username.is_empty() && a.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::new(a.username, a.secret)))
}

/// `docker-credential-NAME store`: keeps `creds` for `server` in the helper's store.
pub fn store(name: &str, server: &str, creds: &Credentials) -> Result<()> {
    let input = serde_json::json!({
        "ServerURL": server,
        "Username": creds.username,
        "Secret": creds.password,
    });
    let o = run(name, "store", input.to_string().as_bytes())?;
    if !o.success {
        return Err(Error::Other(format!(
            "credential helper docker-credential-{name} store failed for {server}: {}",
            // A helper that echoes its input must not show the secret it was given.
            hide(&message(&o), &creds.password)
        )));
    }
    Ok(())
}

/// `docker-credential-NAME erase`; returns whether there were credentials.
pub fn erase(name: &str, server: &str) -> Result<bool> {
    let o = run(name, "erase", server.as_bytes())?;
    if o.success {
        return Ok(true);
    }
    if is_not_found(&o) {
        return Ok(false);
    }
    Err(Error::Other(format!(
        "credential helper docker-credential-{name} erase failed for {server}: {}",
        message(&o)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_names_with_paths_are_refused_and_secrets_hidden() {
        assert!(program("../evil").is_err());
        assert!(program("").is_err());
        assert_eq!(program("pass").unwrap(), "docker-credential-pass");
        assert_eq!(hide("bad input s3cret", "s3cret"), "bad input <hidden>");
    }
}
