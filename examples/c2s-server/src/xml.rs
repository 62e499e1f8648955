//! The connection's two halves: elements read through tokio-xmpp's responder-side XML stream,
//! and text written by the server itself.
//!
//! tokio-xmpp parses: [`accept_stream`] reads the client's stream header and the elements
//! that follow. The server writes its own stream header, features and stanzas, because
//! `xmpp-parsers` 0.23 writes an empty `<mechanisms/>` into the features sent after
//! authentication, which RFC 6120 forbids and some clients reject. The reading half therefore
//! discards whatever tokio-xmpp would write.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

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

/// The reading half, buffered, as tokio-xmpp's XML stream takes it (writes are discarded).
/// It counts the bytes read since the last element ended, and fails the read past the
/// largest stanza the server takes.
pub(crate) struct ReadSide {
    inner: BufReader<ReadHalf<Boxed>>,
    /// Bytes read since the last element (or the stream header) ended.
    read: Cell<usize>,
    /// `c2s_server.max_stanza_size`.
    limit: usize,
}

/// A stanza larger than `c2s_server.max_stanza_size`.
#[derive(Debug, thiserror::Error)]
#[error("a stanza larger than {0} bytes (c2s_server.max_stanza_size)")]
pub(crate) struct TooLarge(usize);

/// The elements the client sends.
pub(crate) type Reader = XmlStream<ReadSide, Element>;

/// The writing half.
pub(crate) struct Writer {
    inner: BufWriter<WriteHalf<Boxed>>,
    /// Whether the stream footer was written.
    closed: bool,
}

/// Splits a transport into its reading side, which takes stanzas up to `limit` bytes, and
/// its writing side.
pub(crate) fn split(transport: Boxed, limit: usize) -> (ReadSide, Writer) {
    let (read, write) = tokio::io::split(transport);
    let read = ReadSide {
        inner: BufReader::new(read),
        read: Cell::new(0),
        limit,
    };
    (
        read,
        Writer {
            inner: BufWriter::new(write),
            closed: false,
        },
    )
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
    /// The client sent a stanza larger than the server takes.
    TooLarge(String),
}

/// Reads the client's next element.
pub(crate) async fn next(reader: &mut Reader) -> Read {
    let read = reader.next().await;
    reader.get_stream().read.set(0);
    match read {
        Some(Ok(element)) => Read::Element(element),
        Some(Err(ReadError::HardError(e)))
            if e.get_ref().is_some_and(|inner| inner.is::<TooLarge>()) =>
        {
            Read::TooLarge(e.to_string())
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
        self.inner.write_all(text.as_bytes()).await?;
        self.inner.flush().await
    }

    /// Writes an element and flushes.
    pub(crate) async fn send(&mut self, element: &Element) -> io::Result<()> {
        self.write(element).await?;
        self.inner.flush().await
    }

    /// Writes an element without flushing, to send several at once.
    pub(crate) async fn write(&mut self, element: &Element) -> io::Result<()> {
        let mut bytes = Vec::new();
        element
            .write_to(&mut bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.inner.write_all(&bytes).await
    }

    /// Flushes what was written.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().await
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
            Read::TooLarge(reason) => self.stream_error("policy-violation", &reason).await,
        }
    }

    /// Writes the stream footer and shuts the writing side down, once.
    pub(crate) async fn close(&mut self) -> io::Result<()> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        self.inner.write_all(b"</stream:stream>").await?;
        self.inner.flush().await?;
        self.inner.shutdown().await
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
            return Poll::Ready(Err(io::Error::other(TooLarge(this.limit))));
        }
        Pin::new(&mut this.inner).poll_fill_buf(cx)
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.read.set(self.read.get().saturating_add(amt));
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
