//! What went wrong, said so that the person at the keyboard knows what to do next.
//!
//! Every failure that reaches an admin or case worker through a node passes through here: a
//! node that is not running, a socket this user may not open, a refusal from the node (a gRPC
//! status), a config file that does not load. The node's own message is kept, since the node
//! writes its messages free of personal data, and a next step is added. The advice is chosen
//! in this one place, so the same failure always gets the same advice, and a test can hold it.

use std::io::ErrorKind;
use std::path::Path;

use tatmx_node::client::ClientError;
use tatmx_node::config::ConfigError;
use tatmx_proto::v1::admin_client::AdminClient;
use tatmx_proto::v1::agency_client::AgencyClient;
use tonic::transport::Channel;

/// A failure with the step that fixes it. `main` prints the problem, then the next step on a
/// line of its own.
#[derive(Debug, thiserror::Error)]
#[error("{problem}")]
pub struct Failure {
    /// What went wrong, with the node's own words where it gave some.
    problem: String,
    /// What to do about it.
    next: String,
}

impl Failure {
    /// A problem and its next step.
    pub fn new(problem: impl Into<String>, next: impl Into<String>) -> Self {
        Self {
            problem: problem.into(),
            next: next.into(),
        }
    }

    /// What to do about it.
    pub fn next(&self) -> &str {
        &self.next
    }
}

/// The next step of the first [`Failure`] in an error's chain, if any.
pub fn next_step(error: &anyhow::Error) -> Option<&str> {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map(Failure::next)
}

/// Which of the node's two local sockets a command uses; the advice names the flag that picks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Staff commands: referrals, inbox, outbox, consents, consultations.
    Agency,
    /// Admin commands: trust, peers, certificates, audit.
    Admin,
}

impl Api {
    /// How to point tatmx at another socket of this kind.
    fn flag(self) -> &'static str {
        match self {
            Self::Agency => "--socket (or TATMX_AGENCY_SOCKET)",
            Self::Admin => "--admin-socket (or TATMX_ADMIN_SOCKET)",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Agency => "Agency",
            Self::Admin => "Admin",
        }
    }
}

/// How to start a node, said the same way everywhere.
const START_NODE: &str = "start it with `tatmx-node --config /etc/tatmx/node.toml` (or \
                          `systemctl start tatmx-node`)";

/// How to use a socket that belongs to the node's user.
const RUN_AS_NODE_USER: &str = "the node's sockets are mode 0600 in a directory of mode 0700, \
                                both owned by the user the node runs as; run tatmx as that user, \
                                such as `sudo -u tatmx tatmx ...`";

/// Connects to the Agency socket, or says what to do.
pub async fn agency(socket: &Path) -> Result<AgencyClient<Channel>, Failure> {
    tatmx_node::client::agency(socket)
        .await
        .map_err(|e| unreachable(Api::Agency, socket, &e))
}

/// Connects to the Admin socket, or says what to do.
pub async fn admin(socket: &Path) -> Result<AdminClient<Channel>, Failure> {
    tatmx_node::client::admin(socket)
        .await
        .map_err(|e| unreachable(Api::Admin, socket, &e))
}

/// Why a node's socket could not be used, and the way out.
pub fn unreachable(api: Api, socket: &Path, error: &ClientError) -> Failure {
    let shown = socket.display();
    if permission_denied(socket, error) {
        return Failure::new(
            format!(
                "permission denied on the node's {} socket {shown}",
                api.name()
            ),
            RUN_AS_NODE_USER,
        );
    }
    let next = format!(
        "is tatmx-node running? {START_NODE}, or pass the socket of a running node with {}; \
         `tatmx doctor --config /etc/tatmx/node.toml` checks a node's setup",
        api.flag()
    );
    match error {
        ClientError::NodeNotRunning(_) if socket.exists() => Failure::new(
            format!(
                "no tatmx node is running at {shown}: the socket is there but nothing answers \
                 (a node that stopped without removing it?)"
            ),
            next,
        ),
        ClientError::NodeNotRunning(_) => Failure::new(
            format!("no tatmx node is running at {shown}: there is no socket there"),
            next,
        ),
        ClientError::Connect { source, .. } => Failure::new(
            format!("cannot connect to the node at {shown}: {source}"),
            format!(
                "check that {shown} is the {} socket of a running node (`data_dir` and \
                 `{}_api.socket` in its config); pass another with {}",
                api.name(),
                api.name().to_ascii_lowercase(),
                api.flag()
            ),
        ),
    }
}

/// Whether a socket failed because this user may not use it, rather than because no node is
/// there.
pub fn permission_denied(socket: &Path, error: &ClientError) -> bool {
    match error {
        // A socket inside a directory this user may not enter looks missing to `exists()`,
        // which is how the node's client decides "not running"; asking again tells them apart.
        ClientError::NodeNotRunning(_) => {
            matches!(socket.try_exists(), Err(e) if e.kind() == ErrorKind::PermissionDenied)
        }
        ClientError::Connect { source, .. } => io_kind(source) == Some(ErrorKind::PermissionDenied),
    }
}

/// The kind of the first I/O error in a chain.
fn io_kind(error: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

/// A refusal from the node: its own message and status, and what to do next.
pub fn refused(status: tonic::Status) -> Failure {
    let code = status.code();
    let message = if status.message().is_empty() {
        code.description()
    } else {
        status.message()
    };
    Failure::new(
        format!("the node refused: {message} ({})", code_name(code)),
        next_for(code),
    )
}

/// The canonical gRPC name of a status code, as grpcurl and the gRPC docs print it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The next step for each status the node answers with. The node's message says what exactly
/// was wrong; this says where to look and what to run.
pub fn next_for(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Unavailable | C::Cancelled | C::Aborted | C::Unknown => {
            "the node is busy, restarting or shutting down; wait a moment and run the command \
             again. If it keeps failing, read the node's log and run `tatmx doctor --config \
             /etc/tatmx/node.toml`"
        }
        C::DeadlineExceeded => {
            "the node did not answer in time; it may be overloaded. Run the command again; if it \
             keeps failing, read the node's log"
        }
        C::PermissionDenied | C::Unauthenticated => {
            "this team may not do that: a referral is moved by the party whose turn it is (see \
             `tatmx referral show ID`), and a directory must be signed by this federation's CA. \
             Ask the team or admin that may"
        }
        C::NotFound => {
            "check the id or name: `tatmx inbox`, `tatmx outbox`, `tatmx consent list`, `tatmx \
             consult list`, `tatmx peer list` and `tatmx trust anchors list` show what this node \
             holds"
        }
        C::FailedPrecondition => {
            "the node's current state does not allow this yet (the message says which); look \
             at it with `tatmx referral show ID`, `tatmx peer list` or `tatmx trust status`, \
             change that, then run the command again"
        }
        C::ResourceExhausted => {
            "the node ran out of room: if its disk is full, free space on its data disk and run \
             the command again (nothing was saved); if a watch fell behind, list, then watch \
             again"
        }
        C::InvalidArgument | C::OutOfRange => {
            "a value in the command or its file is wrong (the message names it); fix it and run \
             the command again; `--help` lists what each takes"
        }
        C::AlreadyExists => {
            "it exists already; to send a new referral, use a new --idempotency-key, or show the \
             existing one"
        }
        C::Unimplemented => {
            "this tatmx and the node are of different versions; use the tatmx that came with the \
             node"
        }
        C::Internal | C::DataLoss => {
            "the node failed and changed nothing; read the node's log, and run `tatmx doctor \
             --config /etc/tatmx/node.toml` to check its store and files"
        }
        C::Ok => "nothing to do",
    }
}

/// A config file that did not load, with each problem's line, and what to do.
pub fn config(path: &Path, error: &ConfigError) -> Failure {
    let shown = path.display();
    match error {
        ConfigError::Read { source, .. } => match source.kind() {
            ErrorKind::NotFound => Failure::new(
                format!("{shown}: no such file"),
                "pass the config the node is started with (`tatmx-node --config FILE`); \
                 deploy/examples/county-core.toml is an annotated example",
            ),
            ErrorKind::PermissionDenied => Failure::new(
                format!("{shown}: permission denied"),
                "run as a user who may read the node's config, such as `sudo -u tatmx tatmx ...` \
                 or root",
            ),
            _ => Failure::new(
                format!("{shown}: {source}"),
                "check that the path names the node's config file",
            ),
        },
        // toml's own message names the line and column and shows it.
        ConfigError::Syntax { message, .. } => Failure::new(
            format!("{shown}: {}", message.trim_end()),
            "fix the line shown; deploy/examples/county-core.toml lists every key",
        ),
        ConfigError::Invalid { problems, .. } => {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<String> = problems
                .iter()
                .map(|problem| {
                    let key = problem.split_once(": ").map_or("", |(key, _)| key);
                    match key_line(&text, key) {
                        Some(line) => format!("{shown}:{line}: {problem}"),
                        None => format!("{shown}: {problem}"),
                    }
                })
                .collect();
            Failure::new(
                format!("invalid configuration:\n  {}", lines.join("\n  ")),
                "fix each key named (they are all listed at once); \
                 deploy/examples/county-core.toml lists every key with its values",
            )
        }
    }
}

/// The line (from 1) where a key such as `node.role`, `peers[1].endpoint` or
/// `retention.threat-assessment` is set in TOML text, if it is written out there. The node's
/// config check names keys, not lines; an admin with a long file wants the line.
pub fn key_line(text: &str, key: &str) -> Option<usize> {
    // `peers[1].endpoint` is table `peers`, element 1, key `endpoint`.
    let (table, index, leaf) = match key.rsplit_once('.') {
        Some((table, leaf)) => match table.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse().ok(), leaf),
            None => (table, None, leaf),
        },
        None => ("", None, key),
    };
    let unquote = |s: &str| s.trim().trim_matches('"').trim_matches('\'').to_owned();
    let mut current = String::new();
    let mut element: Option<usize> = None;
    let mut seen = 0usize;
    let mut header_line = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            current = unquote(name);
            element = if current == table {
                seen += 1;
                Some(seen - 1)
            } else {
                None
            };
            if current == table && element == index {
                header_line = Some(n + 1);
            }
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = unquote(name);
            element = None;
            if current == table && index.is_none() {
                header_line = Some(n + 1);
            }
            continue;
        }
        if current == table
            && element == index
            && let Some((name, _)) = line.split_once('=')
            && unquote(name) == leaf
        {
            return Some(n + 1);
        }
    }
    // A key that is missing, or a problem about a whole table: point at the table.
    header_line
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[node]\nteam = \"x\"\nrole = \"boss\" # wrong\n\n[[peers]]\nteam = \"a\"\n\
                        endpoint = \"https://a:1\"\n\n[[peers]]\nteam = \"b\"\nendpoint = \"http://b:1\"\n\
                        [retention]\n\"threat-assessment\" = \"x\"\n";

    #[test]
    fn keys_are_found_on_their_lines() {
        assert_eq!(key_line(TEXT, "node.role"), Some(3));
        assert_eq!(key_line(TEXT, "peers[0].endpoint"), Some(7));
        assert_eq!(key_line(TEXT, "peers[1].endpoint"), Some(11));
        assert_eq!(key_line(TEXT, "retention.threat-assessment"), Some(13));
        // A missing key points at its table; an unknown table at nothing.
        assert_eq!(key_line(TEXT, "node.data_dir"), Some(1));
        assert_eq!(key_line(TEXT, "audit.retention"), None);
    }

    #[test]
    fn every_refusal_keeps_the_nodes_message_and_adds_a_step() {
        for code in [
            tonic::Code::Unavailable,
            tonic::Code::PermissionDenied,
            tonic::Code::NotFound,
            tonic::Code::FailedPrecondition,
            tonic::Code::ResourceExhausted,
            tonic::Code::InvalidArgument,
        ] {
            let failure = refused(tonic::Status::new(code, "referral r-1 is closed"));
            assert!(failure.to_string().contains("referral r-1 is closed"));
            assert!(failure.to_string().contains(code_name(code)));
            assert!(failure.next().len() > 20, "{code:?}");
        }
        let full = refused(tonic::Status::resource_exhausted("the node's disk is full"));
        assert!(full.next().contains("free space"), "{}", full.next());
    }

    #[test]
    fn a_missing_socket_says_to_start_the_node_and_names_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let failure = unreachable(
            Api::Admin,
            &socket,
            &ClientError::NodeNotRunning(socket.clone()),
        );
        assert!(failure.to_string().contains("no tatmx node is running"));
        assert!(failure.next().contains("tatmx-node --config"));
        assert!(failure.next().contains("--admin-socket"));
    }
}
