//! Clients for the node's own APIs, shared by the CLI, the demo and the tests.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tatmx_proto::v1::admin_client::AdminClient;
use tatmx_proto::v1::agency_client::AgencyClient;
use tonic::transport::{Channel, Endpoint};

/// The Agency API could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing is listening on the socket.
    #[error(
        "no tatmx node is running at {0} (is the node started, and is this its agency socket?)"
    )]
    NodeNotRunning(PathBuf),
    /// The socket exists but could not be used.
    #[error("cannot connect to the node at {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// What went wrong.
        source: tonic::transport::Error,
    },
}

/// Connects to a node's Agency API over its Unix socket.
pub async fn agency(socket: &Path) -> Result<AgencyClient<Channel>, ClientError> {
    Ok(AgencyClient::new(local_channel(socket).await?))
}

/// Connects to a node's Admin API over its Unix socket.
pub async fn admin(socket: &Path) -> Result<AdminClient<Channel>, ClientError> {
    Ok(AdminClient::new(local_channel(socket).await?))
}

/// A channel over one of the node's Unix sockets, failing plainly when no node is there.
pub async fn local_channel(socket: &Path) -> Result<Channel, ClientError> {
    if !socket.exists() {
        return Err(ClientError::NodeNotRunning(socket.to_owned()));
    }
    let path = socket.to_owned();
    // The URI is a placeholder that tonic requires; the connector ignores it.
    let channel = Endpoint::from_static("http://agency.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|source| {
            if is_refused(&source) {
                ClientError::NodeNotRunning(socket.to_owned())
            } else {
                ClientError::Connect {
                    path: socket.to_owned(),
                    source,
                }
            }
        })?;
    Ok(channel)
}

fn is_refused(error: &tonic::transport::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            );
        }
        source = e.source();
    }
    false
}
