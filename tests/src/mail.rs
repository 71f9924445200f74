//! A real SMTP server for the tests of emailed notifications: aiosmtpd (the Python project's
//! asyncio SMTP server, from PyPI), run as its own process on a loopback port, storing every
//! mail it accepts in a Maildir that the test reads.
//!
//! `tests/mail/setup` installs it into `tests/mail/.venv`. When it is missing, [`MailSink::start`]
//! says what is missing, and the test prints `SKIPPED` and passes, unless
//! `TATMX_MAIL_TESTS=require` (or `TATMX_BROWSER_TESTS=require`, which CI sets) asks for it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set to `require` to fail, not skip, when the SMTP server is missing.
pub const REQUIRE_VAR: &str = "TATMX_MAIL_TESTS";

/// Whether a missing SMTP server must fail the test.
pub fn required() -> bool {
    [REQUIRE_VAR, "TATMX_BROWSER_TESTS"]
        .iter()
        .any(|var| std::env::var(var).is_ok_and(|v| v == "require"))
}

/// The Python that has aiosmtpd: `TATMX_AIOSMTPD_PYTHON`, else `tests/mail/.venv`'s.
fn python() -> Result<PathBuf, String> {
    let python = std::env::var_os("TATMX_AIOSMTPD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("mail")
                .join(".venv")
                .join("bin")
                .join("python")
        });
    let has = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has {
        Ok(python)
    } else {
        Err(format!(
            "aiosmtpd is missing ({} cannot import it); install it with `tests/mail/setup`",
            python.display()
        ))
    }
}

/// One mail as the server received it: the whole message, headers and text.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The message as it arrived (after the relay's own `X-Peer` and `X-MailFrom` headers).
    pub raw: String,
}

impl Mail {
    /// The value of a header (the first one of that name).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\n\n").next().unwrap_or("");
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// The text after the headers, with quoted-printable soft line breaks joined.
    pub fn text(&self) -> String {
        let normalized = self.raw.replace("\r\n", "\n");
        let body = normalized
            .split_once("\n\n")
            .map(|(_, body)| body)
            .unwrap_or("");
        body.replace("=\n", "").replace("=3D", "=")
    }
}

/// An SMTP server on a loopback port, stopped when dropped.
pub struct MailSink {
    /// The aiosmtpd process.
    child: Child,
    /// Where it listens.
    pub port: u16,
    /// Its Maildir.
    maildir: PathBuf,
}

impl MailSink {
    /// Starts the server on `port` (one the test reserved), storing mail under `dir`; `Err`
    /// says what is missing when aiosmtpd is not installed.
    pub fn start(port: u16, dir: &Path) -> Result<Self, String> {
        let python = python()?;
        let maildir = dir.join("maildir");
        // A Maildir's three folders; Python's `mailbox` makes them only when the folder
        // itself is new.
        for sub in ["tmp", "new", "cur"] {
            let path = maildir.join(sub);
            std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let log = std::fs::File::create(dir.join("aiosmtpd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("aiosmtpd did not start: {e}"))?;
        let sink = Self {
            child,
            port,
            maildir,
        };
        // Ready when it greets.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::Read;
                let mut greeting = [0u8; 3];
                let mut stream = stream;
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .map_err(|e| e.to_string())?;
                if stream.read_exact(&mut greeting).is_ok() && &greeting == b"220" {
                    return Ok(sink);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("aiosmtpd did not answer on port {port}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every mail received so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let modified = entry.metadata().ok()?.modified().ok()?;
                Some((modified, entry.path()))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read(path).ok())
            .map(|bytes| Mail {
                raw: String::from_utf8_lossy(&bytes).into_owned(),
            })
            .collect()
    }

    /// Waits until at least `count` mails have arrived, up to `limit`; returns them all.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + limit;
        loop {
            let mails = self.mails();
            if mails.len() >= count || Instant::now() > deadline {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `[email]` section for a node that sends through `sink`, linking to `console_url`, and
/// looking for mail to send every 200 ms.
pub fn email_section(sink: &MailSink, console_url: &str) -> String {
    format!(
        "[email]\nrelay = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"tatmx@county.example\"\n\
         console_url = \"{console_url}\"\ninterval = \"200ms\"\n",
        sink.port
    )
}
