//! The SMTP listener: just enough RFC 5321 for any client to hand over mail, and robust
//! against everything else.
//!
//! Every line is read with a length cap and an idle timeout, every malformed command gets a
//! 5xx reply (a client that keeps sending garbage is disconnected after
//! [`MAX_CONSECUTIVE_ERRORS`]), and nothing a client sends can end the listener. Messages over
//! the size limit are read to their end and refused with 552, so the session stays in sync.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_http::Shutdown;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::message::{Envelope, Message};
use crate::store::Mailbox;

/// Longest command line accepted (RFC 5321 asks for 512; clients with long addresses exceed it).
pub const MAX_COMMAND_LINE: usize = 4096;
/// Most recipients per message.
pub const MAX_RECIPIENTS: usize = 1000;
/// A session idle this long is closed with 421.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A reply not accepted by the client within this time ends the session.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A session sending this many bad commands in a row is closed with 421.
pub const MAX_CONSECUTIVE_ERRORS: usize = 20;

/// Settings of the SMTP listener.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Name announced in the greeting and `EHLO` reply.
    pub hostname: String,
    /// Largest message accepted, in bytes (announced as `SIZE`).
    pub max_message_size: usize,
}

/// Accepts connections until `shutdown` fires, then tells open sessions 421 and waits for them.
pub(crate) async fn serve(
    listener: TcpListener,
    shutdown: Shutdown,
    mailbox: Arc<Mailbox>,
    settings: Arc<SmtpSettings>,
) {
    let addr = listener.local_addr().ok();
    tracing::info!(what = "mail smtp", addr = ?addr, "listening");
    let sessions = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let session = Session {
                    peer,
                    helo: None,
                    mail_from: None,
                    rcpt_to: Vec::new(),
                    mailbox: mailbox.clone(),
                    settings: settings.clone(),
                };
                sessions.spawn(session.run(stream, shutdown.clone(), true));
            }
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "smtp accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    sessions.close();
    sessions.wait().await;
}

/// One session on an accepted connection of any kind; `greet` is false after STARTTLS.
pub(crate) async fn session<S>(
    stream: S,
    peer: SocketAddr,
    shutdown: Shutdown,
    mailbox: Arc<Mailbox>,
    settings: Arc<SmtpSettings>,
    greet: bool,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let session = Session {
        peer,
        helo: None,
        mail_from: None,
        rcpt_to: Vec::new(),
        mailbox,
        settings,
    };
    session.run(stream, shutdown, greet).await;
}

enum Input {
    Line,
    TooLong,
    Closed,
    TimedOut,
    ShuttingDown,
}

enum Next {
    Reply(String),
    Data,
    Quit,
}

fn reply(code: u16, text: &str) -> Next {
    Next::Reply(format!("{code} {text}\r\n"))
}

struct Session {
    peer: SocketAddr,
    helo: Option<String>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    mailbox: Arc<Mailbox>,
    settings: Arc<SmtpSettings>,
}

impl Session {
    async fn run<S>(mut self, stream: S, shutdown: Shutdown, greet: bool)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin,
    {
        let (read, mut write) = tokio::io::split(stream);
        let mut reader = BufReader::new(read);
        let greeting = format!(
            "220 {} ESMTP Portcullis mail catcher ready\r\n",
            self.settings.hostname
        );
        if greet && send(&mut write, &greeting).await.is_err() {
            return;
        }
        let mut line = Vec::new();
        let mut errors = 0;
        loop {
            let next = match next_line(&mut reader, &mut line, MAX_COMMAND_LINE, &shutdown).await {
                Input::Line => self.command(&line),
                Input::TooLong => reply(500, "Line too long"),
                Input::Closed => return,
                Input::TimedOut => {
                    let _ = send(&mut write, "421 Idle timeout, closing connection\r\n").await;
                    return;
                }
                Input::ShuttingDown => {
                    let _ = send(&mut write, "421 Service shutting down\r\n").await;
                    return;
                }
            };
            let text = match next {
                Next::Reply(text) => text,
                Next::Quit => {
                    let _ = send(&mut write, "221 Bye\r\n").await;
                    return;
                }
                Next::Data => {
                    if send(&mut write, "354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    match self.data(&mut reader, &mut write, &shutdown).await {
                        Some(text) => text,
                        None => return,
                    }
                }
            };
            if text.starts_with('5') {
                errors += 1;
            } else {
                errors = 0;
            }
            if send(&mut write, &text).await.is_err() {
                return;
            }
            if errors >= MAX_CONSECUTIVE_ERRORS {
                let _ = send(&mut write, "421 Too many errors, closing connection\r\n").await;
                return;
            }
        }
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    fn command(&mut self, line: &[u8]) -> Next {
        let Ok(line) = std::str::from_utf8(trim_line_end(line)) else {
            return reply(500, "Syntax error, command unrecognized");
        };
        let (verb, args) = match line.split_once(' ') {
            Some((verb, args)) => (verb, args.trim()),
            None => (line, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "HELO" | "EHLO" if args.is_empty() => reply(501, "Syntax: HELO/EHLO hostname"),
            "HELO" => {
                self.reset();
                self.helo = Some(args.to_string());
                reply(250, &self.settings.hostname)
            }
            "EHLO" => {
                self.reset();
                self.helo = Some(args.to_string());
                Next::Reply(format!(
                    "250-{} Hello {args}\r\n250-PIPELINING\r\n250-SIZE {}\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
                    self.settings.hostname, self.settings.max_message_size
                ))
            }
            "MAIL" => self.mail(args),
            "RCPT" => self.rcpt(args),
            "DATA" if !args.is_empty() => reply(501, "Syntax: DATA"),
            "DATA" if self.mail_from.is_none() => reply(503, "Bad sequence of commands: need MAIL"),
            "DATA" if self.rcpt_to.is_empty() => reply(503, "Bad sequence of commands: need RCPT"),
            "DATA" => Next::Data,
            "RSET" => {
                self.reset();
                reply(250, "OK")
            }
            "NOOP" => reply(250, "OK"),
            "QUIT" => Next::Quit,
            "VRFY" => reply(
                252,
                "Cannot VRFY user, but will accept message and attempt delivery",
            ),
            "HELP" => reply(
                214,
                "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
            ),
            "STARTTLS" | "AUTH" | "EXPN" | "TURN" | "ETRN" | "BDAT" => {
                reply(502, "Command not implemented")
            }
            _ => reply(500, "Syntax error, command unrecognized"),
        }
    }

    fn mail(&mut self, args: &str) -> Next {
        if self.helo.is_none() {
            return reply(503, "Bad sequence of commands: send HELO/EHLO first");
        }
        if self.mail_from.is_some() {
            return reply(503, "Bad sequence of commands: nested MAIL command");
        }
        let Some((path, params)) = parse_path(args, b"FROM:") else {
            return reply(501, "Syntax: MAIL FROM:<address>");
        };
        for param in params.split_whitespace() {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(size) if size > self.settings.max_message_size as u64 => {
                        return reply(552, "Message size exceeds fixed maximum message size");
                    }
                    Ok(_) => {}
                    Err(_) => return reply(501, "Syntax: SIZE=<number>"),
                },
                "BODY" if matches!(value.to_ascii_uppercase().as_str(), "7BIT" | "8BITMIME") => {}
                "SMTPUTF8" if value.is_empty() => {}
                _ => {
                    return reply(
                        555,
                        "MAIL FROM parameters not recognized or not implemented",
                    );
                }
            }
        }
        self.mail_from = Some(path.to_string());
        reply(250, "OK")
    }

    fn rcpt(&mut self, args: &str) -> Next {
        if self.mail_from.is_none() {
            return reply(503, "Bad sequence of commands: need MAIL");
        }
        let Some((path, params)) = parse_path(args, b"TO:") else {
            return reply(501, "Syntax: RCPT TO:<address>");
        };
        if path.is_empty() {
            return reply(501, "Syntax: RCPT TO:<address>");
        }
        if !params.trim().is_empty() {
            return reply(555, "RCPT TO parameters not recognized or not implemented");
        }
        if self.rcpt_to.len() >= MAX_RECIPIENTS {
            return reply(452, "Too many recipients");
        }
        self.rcpt_to.push(path.to_string());
        reply(250, "OK")
    }

    /// Reads the message after `354`; `None` when the connection must close.
    async fn data<R, W>(
        &mut self,
        reader: &mut R,
        write: &mut W,
        shutdown: &Shutdown,
    ) -> Option<String>
    where
        R: AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let max = self.settings.max_message_size;
        let mut body = Vec::new();
        let mut too_large = false;
        let mut line = Vec::new();
        loop {
            match next_line(reader, &mut line, max.saturating_add(2), shutdown).await {
                Input::Line => {}
                Input::TooLong => {
                    too_large = true;
                    body = Vec::new();
                    continue;
                }
                Input::Closed => return None,
                Input::TimedOut => {
                    let _ = send(write, "421 Idle timeout, closing connection\r\n").await;
                    return None;
                }
                Input::ShuttingDown => {
                    let _ = send(write, "421 Service shutting down\r\n").await;
                    return None;
                }
            }
            let content = trim_line_end(&line);
            if content == b"." {
                break;
            }
            // Dot-unstuffing (RFC 5321 4.5.2): a leading dot was doubled by the client.
            let content = content.strip_prefix(b".").unwrap_or(content);
            if too_large {
                continue;
            }
            if body.len() + content.len() + 2 > max {
                too_large = true;
                body = Vec::new();
                continue;
            }
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        let envelope = Envelope {
            helo: self.helo.clone().unwrap_or_default(),
            mail_from: self.mail_from.take().unwrap_or_default(),
            rcpt_to: std::mem::take(&mut self.rcpt_to),
            peer: Some(self.peer),
        };
        if too_large {
            return Some("552 Message exceeds fixed maximum message size\r\n".to_string());
        }
        let message = self.mailbox.insert(Message::parse(body, envelope));
        tracing::debug!(id = %message.id, to = ?message.envelope.rcpt_to, subject = %message.subject, "mail caught");
        Some(format!("250 OK: queued as {}\r\n", message.id))
    }
}

/// Parses `FROM:<path> params` / `TO:<path> params` (the keyword case-insensitive, a space
/// after the colon and a missing pair of brackets tolerated).
fn parse_path<'a>(args: &'a str, keyword: &[u8]) -> Option<(&'a str, &'a str)> {
    let head = args.as_bytes().get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    // The keyword is ASCII, so this index is a char boundary.
    let rest = args[keyword.len()..].trim_start();
    let (path, params) = match rest.strip_prefix('<') {
        Some(inner) => {
            let end = inner.find('>')?;
            (&inner[..end], &inner[end + 1..])
        }
        None => rest.split_once(' ').unwrap_or((rest, "")),
    };
    if path
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<')
    {
        return None;
    }
    Some((path, params))
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Writes a reply; a client that stops reading is given [`WRITE_TIMEOUT`], so it cannot hold
/// a session (or shutdown) forever.
async fn send<W: AsyncWrite + Unpin>(write: &mut W, text: &str) -> std::io::Result<()> {
    let written = async {
        write.write_all(text.as_bytes()).await?;
        write.flush().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, written)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Reads one line (with its ending) into `line`, waiting at most [`IDLE_TIMEOUT`].
async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
    shutdown: &Shutdown,
) -> Input {
    tokio::select! {
        _ = shutdown.cancelled() => Input::ShuttingDown,
        read = tokio::time::timeout(IDLE_TIMEOUT, read_line(reader, line, max)) => match read {
            Err(_) => Input::TimedOut,
            Ok(Err(_)) => Input::Closed,
            Ok(Ok(input)) => input,
        },
    }
}

/// Reads up to and including `\n`. A line longer than `max` is consumed and reported as
/// [`Input::TooLong`] without being buffered; end of stream (even mid-line) is `Closed`.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Input> {
    line.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Input::Closed);
        }
        let (used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        if !too_long {
            if line.len() + used > max {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(&available[..used]);
            }
        }
        reader.consume(used);
        if done {
            return Ok(if too_long {
                Input::TooLong
            } else {
                Input::Line
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_leniently_but_safely() {
        assert_eq!(parse_path("FROM:<a@b>", b"FROM:"), Some(("a@b", "")));
        assert_eq!(
            parse_path("from: <a@b> SIZE=10 BODY=8BITMIME", b"FROM:"),
            Some(("a@b", " SIZE=10 BODY=8BITMIME"))
        );
        assert_eq!(parse_path("FROM:<>", b"FROM:"), Some(("", "")));
        assert_eq!(parse_path("TO:a@b", b"TO:"), Some(("a@b", "")));
        assert_eq!(parse_path("TO:<a@b", b"TO:"), None);
        assert_eq!(parse_path("TO:<a b@c>", b"TO:"), None);
        assert_eq!(parse_path("FROX:<a@b>", b"FROM:"), None);
        assert_eq!(parse_path("é", b"FROM:"), None);
        assert_eq!(parse_path("FRé:<a>", b"FROM:"), None);
    }

    #[tokio::test]
    async fn long_lines_are_skipped_whole() {
        let input = b"0123456789abcdef\r\nok\r\npartial";
        let mut reader = BufReader::with_capacity(4, &input[..]);
        let mut line = Vec::new();
        assert!(matches!(
            read_line(&mut reader, &mut line, 8).await,
            Ok(Input::TooLong)
        ));
        assert!(matches!(
            read_line(&mut reader, &mut line, 8).await,
            Ok(Input::Line)
        ));
        assert_eq!(line, b"ok\r\n");
        assert!(matches!(
            read_line(&mut reader, &mut line, 8).await,
            Ok(Input::Closed)
        ));
    }
}
