//! The connection's two halves: elements read through tokio-xmpp's responder-side XML stream,
//! and text written by the server itself.
//!
//! tokio-xmpp parses: [`xmlstream::accept_stream`] reads the client's stream header and the
//! elements that follow. Before it sees the bytes, the reading half checks a stanza's size
//! and how deeply it nests ([`Depth`]). The server writes its own stream header, features and stanzas, because
//! `xmpp-parsers` 0.23 writes an empty `<mechanisms/>` into the features sent after
//! authentication, which RFC 6120 forbids and some clients reject. The reading half therefore
//! discards whatever tokio-xmpp would write.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::depth::Depth;
use futures_util::StreamExt;
use offline_module::minidom::Element;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
    ReadBuf, ReadHalf, WriteHalf,
};
use tokio_xmpp::xmlstream::{self, ReadError, StreamHeader, Timeouts, XmlStream};
use xmpp_parsers::stream_features::StreamFeatures;

/// The stream namespace of client connections.
pub(crate) const JABBER_CLIENT: &str = "jabber:client";
/// RFC 6120's stream-level namespace.
pub(crate) const STREAMS: &str = "http://etherx.jabber.org/streams";
/// Stream error conditions.
const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// A byte stream a connection runs on: TCP, or TLS over TCP.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// A connection's transport, plain or encrypted.
pub(crate) type Boxed = Box<dyn Transport>;

/// How deeply a stanza may nest, the stanza being level 1: the module's own limit at its
/// highest. The element tree is built recursively, so deeper stanzas end the stream.
const MAX_STANZA_DEPTH: usize = offline_module::stanza::MAX_DEPTH_LIMIT;

/// The reading half, buffered, as tokio-xmpp's XML stream takes it (writes are discarded).
/// It counts the bytes read since the last element ended and how deeply the bytes nest, and
/// fails the read past the largest or deepest stanza the server takes, before the parser
/// sees the bytes.
pub(crate) struct ReadSide {
    inner: BufReader<ReadHalf<Boxed>>,
    /// Bytes read since the last element (or the stream header) ended.
    read: Cell<usize>,
    /// `c2s_server.max_stanza_size`.
    limit: usize,
    /// The nesting of the bytes handed to the parser.
    depth: Depth,
    /// How many bytes at the start of the buffer were already scanned for depth.
    scanned: usize,
}

/// A stanza over one of the server's limits.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct OverLimit(String);

/// The elements the client sends.
pub(crate) type Reader = XmlStream<ReadSide, Element>;

/// The writing half.
pub(crate) struct Writer {
    inner: BufWriter<WriteHalf<Boxed>>,
    /// How long a write may wait for the client to read.
    patience: Duration,
    /// Whether the stream footer was written.
    closed: bool,
}

/// Splits a transport into its reading side, which takes stanzas up to `limit` bytes, and
/// its writing side, whose writes fail when the client reads nothing for `patience`.
pub(crate) fn split(transport: Boxed, limit: usize, patience: Duration) -> (ReadSide, Writer) {
    let (read, write) = tokio::io::split(transport);
    let read = ReadSide {
        inner: BufReader::new(read),
        read: Cell::new(0),
        limit,
        depth: Depth::default(),
        scanned: 0,
    };
    let writer = Writer {
        inner: BufWriter::new(write),
        patience,
        closed: false,
    };
    (read, writer)
}

/// Joins the two sides again, to start TLS on the transport. Fails if the client sent
/// anything but whitespace after the element that asked for TLS (RFC 6120 §5.4.3.3: such
/// bytes must not be read as if they had been encrypted).
pub(crate) fn join(read: ReadSide, writer: Writer) -> io::Result<Boxed> {
    if read.inner.buffer().iter().any(|b| !b.is_ascii_whitespace()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the client sent data before the TLS handshake",
        ));
    }
    Ok(read.inner.into_inner().unsplit(writer.inner.into_inner()))
}

/// Reads the client's stream header on `read` (the start of a connection, or a restart after
/// STARTTLS or SASL), skipping the whitespace a client may write after the element that
/// ended the previous stream. Returns the element reader and the domain the client asked for.
pub(crate) async fn accept(
    mut read: ReadSide,
    timeouts: Timeouts,
) -> io::Result<(Reader, Option<String>)> {
    loop {
        let buffered = read.inner.fill_buf().await?;
        if buffered.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let blank = buffered
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        let done = blank < buffered.len();
        read.inner.consume(blank);
        if done {
            break;
        }
    }
    read.read.set(0);
    read.depth = Depth::default();
    read.scanned = 0;
    let mut accepted = xmlstream::accept_stream(read, JABBER_CLIENT, timeouts).await?;
    let to = accepted.take_header().to.map(|to| to.into_owned());
    // What tokio-xmpp writes here is discarded: the server writes its own (see above).
    let reader = accepted
        .send_header(StreamHeader::default())
        .await?
        .send_features(&StreamFeatures::default())
        .await?;
    Ok((reader, to))
}

/// What reading the next element gave.
pub(crate) enum Read {
    /// An element.
    Element(Element),
    /// The client was silent for the stream's read timeout: ask it for a sign of life.
    Silent,
    /// The client closed the stream, or the connection is gone.
    Closed,
    /// The client sent what is not XML, or an element that cannot be read.
    Malformed(String),
    /// The client sent a stanza larger or deeper than the server takes.
    OverLimit(String),
}

/// Reads the client's next element.
pub(crate) async fn next(reader: &mut Reader) -> Read {
    let read = reader.next().await;
    reader.get_stream().read.set(0);
    match read {
        Some(Ok(element)) => Read::Element(element),
        Some(Err(ReadError::HardError(e)))
            if e.get_ref().is_some_and(|inner| inner.is::<OverLimit>()) =>
        {
            Read::OverLimit(e.to_string())
        }
        Some(Err(ReadError::SoftTimeout)) => Read::Silent,
        Some(Err(ReadError::ParseError(e))) => Read::Malformed(e.to_string()),
        Some(Err(ReadError::HardError(e))) if e.kind() == io::ErrorKind::InvalidData => {
            Read::Malformed(e.to_string())
        }
        None | Some(Err(ReadError::StreamFooterReceived | ReadError::HardError(_))) => Read::Closed,
    }
}

/// Gives the reading side back, for a stream restart.
pub(crate) fn restart(reader: Reader) -> ReadSide {
    reader.into_inner()
}

impl Writer {
    /// Writes the server's stream header for `domain` (a served domain: nothing to escape),
    /// and flushes.
    pub(crate) async fn header(&mut self, domain: &str) -> io::Result<()> {
        let id = format!("{:016x}", fastrand::u64(..));
        let text = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{JABBER_CLIENT}' \
             xmlns:stream='{STREAMS}' id='{id}' from='{domain}' version='1.0' xml:lang='en'>"
        );
        self.text(&text).await?;
        self.flush().await
    }

    /// Writes the stream's features: `children` inside `<stream:features/>`, and flushes.
    pub(crate) async fn features(&mut self, children: &[Element]) -> io::Result<()> {
        self.text("<stream:features>").await?;
        for child in children {
            self.write(child).await?;
        }
        self.text("</stream:features>").await?;
        self.flush().await
    }

    /// Writes an element and flushes.
    pub(crate) async fn send(&mut self, element: &Element) -> io::Result<()> {
        self.write(element).await?;
        self.flush().await
    }

    /// Writes an element without flushing, to send several at once.
    pub(crate) async fn write(&mut self, element: &Element) -> io::Result<()> {
        let mut bytes = Vec::new();
        element
            .write_to(&mut bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.patiently(|inner| inner.write_all(&bytes)).await
    }

    /// Flushes what was written.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        self.patiently(BufWriter::flush).await
    }

    async fn text(&mut self, text: &str) -> io::Result<()> {
        self.patiently(|inner| inner.write_all(text.as_bytes()))
            .await
    }

    /// Runs a write that fails once the client has read nothing for the writer's patience.
    async fn patiently<'a, F>(
        &'a mut self,
        write: impl FnOnce(&'a mut BufWriter<WriteHalf<Boxed>>) -> F,
    ) -> io::Result<()>
    where
        F: Future<Output = io::Result<()>> + 'a,
    {
        match tokio::time::timeout(self.patience, write(&mut self.inner)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing in time",
            )),
        }
    }

    /// Writes a stream error with `condition` and closes the stream.
    pub(crate) async fn stream_error(&mut self, condition: &str, text: &str) -> io::Result<()> {
        let error = Element::builder("error", STREAMS)
            .append(Element::bare(condition, STREAM_ERRORS))
            .append(Element::builder("text", STREAM_ERRORS).append(text).build())
            .build();
        self.write(&error).await?;
        self.close().await
    }

    /// Ends the stream after a read that gave no element: with the stream error it calls
    /// for, or just the footer if the client closed it.
    pub(crate) async fn end(&mut self, read: Read) -> io::Result<()> {
        match read {
            Read::Element(_) | Read::Closed => self.close().await,
            Read::Silent => {
                self.stream_error("connection-timeout", "Nothing was sent in time.")
                    .await
            }
            Read::Malformed(reason) => self.stream_error("not-well-formed", &reason).await,
            Read::OverLimit(reason) => self.stream_error("policy-violation", &reason).await,
        }
    }

    /// Writes the stream footer and shuts the writing side down, once.
    pub(crate) async fn close(&mut self) -> io::Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        self.text("</stream:stream>").await?;
        self.flush().await?;
        self.patiently(BufWriter::shutdown).await
    }
}

/// How long a connection may stay silent: before login, 30 s; once logged in, 120 s, then
/// the server pings and the client has `ping_timeout` to answer.
pub(crate) fn timeouts(logged_in: bool, ping_timeout: Duration) -> Timeouts {
    if logged_in {
        Timeouts {
            read_timeout: Duration::from_secs(120),
            response_timeout: ping_timeout,
        }
    } else {
        Timeouts {
            read_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
        }
    }
}

/// Reads go through the buffer, so that every byte is counted once, in `consume`.
impl AsyncRead for ReadSide {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let available = match self.as_mut().poll_fill_buf(cx) {
            Poll::Ready(Ok(available)) => available,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for ReadSide {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.read.get() > this.limit {
            let reason = format!(
                "a stanza larger than {} bytes (c2s_server.max_stanza_size)",
                this.limit
            );
            return Poll::Ready(Err(io::Error::other(OverLimit(reason))));
        }
        let buffered = match Pin::new(&mut this.inner).poll_fill_buf(cx) {
            Poll::Ready(Ok(buffered)) => buffered,
            other => return other,
        };
        let fresh = buffered.get(this.scanned..).unwrap_or_default();
        if !fresh.is_empty() {
            this.scanned = buffered.len();
            // The stream element is level 1.
            if this.depth.scan(fresh) > MAX_STANZA_DEPTH + 1 {
                let reason = format!("a stanza nested deeper than {MAX_STANZA_DEPTH} levels");
                return Poll::Ready(Err(io::Error::other(OverLimit(reason))));
            }
        }
        Poll::Ready(Ok(buffered))
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.read.set(self.read.get().saturating_add(amt));
        self.scanned = self.scanned.saturating_sub(amt);
        Pin::new(&mut self.inner).consume(amt);
    }
}

/// Discards what tokio-xmpp writes (see the module's documentation).
impl AsyncWrite for ReadSide {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
