//! The Agency and Admin APIs' Unix sockets, made reachable by stock gRPC clients.
//!
//! gRPC's C core (Python's grpcio, C++, Ruby, C#, PHP) sends, for a `unix:/run/x/agency.sock`
//! target, the HTTP/2 `:authority` `run%2Fx%2Fagency.sock`; grpc-java and others send the bare
//! path. The node's HTTP/2 server (h2, under hyper and tonic) parses every `:authority` as a URI
//! authority, refuses both forms, and resets the stream with PROTOCOL_ERROR: the client sees
//! `INTERNAL: Stream removed`. h2 has no option to relax this (hyperium/h2#487 is unmerged),
//! and no h2 or http release accepts such a host.
//!
//! So each accepted connection goes through a relay that owns the client-to-node direction:
//! h2's own frame codec decodes each frame (its HPACK, its limits), the relay drops a request's
//! `:authority` when it is not a valid URI authority, and a second h2 codec re-encodes the
//! frame towards the gRPC server over an in-memory pipe. On a Unix socket the authority names
//! no one: routing is by path, and the caller is who `SO_PEERCRED` says (carried over as
//! tonic's [`UdsConnectInfo`]). The node-to-client direction is copied byte for byte.
//!
//! Invariant: the two codecs use HTTP/2's default frame size and header table size, which are
//! what the node's gRPC servers advertise; a server setting changing either must change the
//! relay too.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::poll_fn;
use h2::Codec;
use h2::frame::Frame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, UdsConnectInfo};

/// The client connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes buffered in each direction of the in-memory pipe to the gRPC server.
const PIPE_BYTES: usize = 64 * 1024;

/// One accepted local connection as the gRPC server sees it: the server's end of the pipe to
/// the relay, and the Unix peer's credentials.
pub struct Relayed {
    io: DuplexStream,
    info: UdsConnectInfo,
}

/// The connections accepted on `listener`, each relayed as the module says.
pub fn incoming(listener: UnixListener) -> impl Stream<Item = io::Result<Relayed>> {
    tokio_stream::wrappers::UnixListenerStream::new(listener).map(|accepted| {
        let client = accepted?;
        let info = UdsConnectInfo {
            peer_addr: client.peer_addr().ok().map(Arc::new),
            peer_cred: client.peer_cred().ok(),
        };
        let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
        tokio::spawn(async move {
            if let Err(e) = relay(client, ours).await {
                // A client that hangs up or speaks bad HTTP/2 ends only its own connection.
                tracing::debug!(error = %e, "local API connection ended");
            }
        });
        Ok(Relayed { io: theirs, info })
    })
}

async fn relay(client: UnixStream, server: DuplexStream) -> io::Result<()> {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = tokio::io::split(server);
    let down = async move {
        tokio::io::copy(&mut from_server, &mut to_client).await?;
        to_client.shutdown().await
    };
    let up = async move {
        let mut preface = [0u8; 24];
        from_client.read_exact(&mut preface).await?;
        to_server.write_all(&preface).await?;
        if &preface != PREFACE {
            // Not HTTP/2 with prior knowledge: the server refuses it in its own words.
            tokio::io::copy(&mut from_client, &mut to_server).await?;
            return to_server.shutdown().await;
        }
        let mut frames = Codec::<_, Bytes>::new(ReadOnly(from_client));
        let mut out = Codec::<_, Bytes>::new(WriteOnly(to_server));
        while let Some(frame) = frames.next().await {
            let mut frame = frame.map_err(|e| io::Error::other(format!("{e:?}")))?;
            if let Frame::Headers(headers) = &mut frame {
                if headers.is_over_size() {
                    return Err(io::Error::other("header list over h2's limit"));
                }
                let pseudo = headers.pseudo_mut();
                if pseudo
                    .authority
                    .as_ref()
                    .is_some_and(|a| a.parse::<http::uri::Authority>().is_err())
                {
                    pseudo.authority = None;
                }
            }
            poll_fn(|cx| out.poll_ready(cx)).await?;
            out.buffer(frame).map_err(io::Error::other)?;
            poll_fn(|cx| out.flush(cx)).await?;
        }
        out.get_mut().0.shutdown().await
    };
    let (up, down) = tokio::join!(up, down);
    up.and(down)
}

impl Connected for Relayed {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> UdsConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Relayed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Relayed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The reading half of a stream, for a codec that is only ever read: h2's codec wants both.
struct ReadOnly<R>(R);

impl<R: AsyncRead + Unpin> AsyncRead for ReadOnly<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for ReadOnly<R> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The writing half of a stream, for a codec that is only ever written: it reads as ended.
struct WriteOnly<W>(W);

impl<W: Unpin> AsyncRead for WriteOnly<W> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for WriteOnly<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
