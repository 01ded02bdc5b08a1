//! Email through lettre: STARTTLS (required, never downgraded), implicit TLS, or plain.

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Notifier, NotifyError, SendFuture};
use crate::config::{EmailConfig, SmtpTls};
use crate::error::Error;
use crate::notification::Notification;
use crate::render;

/// Sends notifications as multipart (text + HTML) mail.
pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    subject: String,
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl EmailNotifier {
    /// Builds the transport (reads `ca_file`); no connection is made yet.
    pub fn new(c: &EmailConfig, timeout: Duration) -> Result<Self, Error> {
        let cfg_err = |m: String| Error::Config(format!("email: {m}"));
        let tls_params = || -> Result<TlsParameters, Error> {
            let mut b = TlsParameters::builder(c.host.clone());
            if let Some(path) = &c.ca_file {
                let pem = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
                let cert =
                    Certificate::from_pem(&pem).map_err(|e| cfg_err(format!("ca_file: {e}")))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().map_err(|e| cfg_err(format!("tls: {e}")))
        };
        let (tls, default_port) = match c.tls {
            // `Required`: a relay that does not offer STARTTLS, or a failed handshake, is
            // an error; lettre never continues in plain text.
            SmtpTls::Starttls => (Tls::Required(tls_params()?), 587),
            SmtpTls::Tls => (Tls::Wrapper(tls_params()?), 465),
            SmtpTls::Plain => {
                if !is_loopback(&c.host) {
                    tracing::warn!(host = %c.host, "smtp without tls to a relay that is not loopback: mail and credentials travel in clear");
                }
                (Tls::None, 25)
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
            .port(c.port.unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(u), Some(p)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        let parse = |a: &String| {
            a.parse::<Mailbox>()
                .map_err(|e| cfg_err(format!("address '{a}': {e}")))
        };
        Ok(EmailNotifier {
            transport: builder.build(),
            from: parse(&c.from)?,
            to: c.to.iter().map(parse).collect::<Result<_, _>>()?,
            cc: c.cc.iter().map(parse).collect::<Result<_, _>>()?,
            subject: c.subject.clone(),
        })
    }

    /// The message for a notification (pure; the idempotency key is the Message-ID).
    pub fn message(&self, n: &Notification) -> Result<Message, NotifyError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(render::subject(&self.subject, n))
            .message_id(Some(format!("<{}@logward>", n.idempotency_key)));
        for to in &self.to {
            b = b.to(to.clone());
        }
        for cc in &self.cc {
            b = b.cc(cc.clone());
        }
        b.multipart(MultiPart::alternative_plain_html(
            render::text_body(n),
            render::html_body(n),
        ))
        .map_err(|e| NotifyError::permanent(format!("building the message: {e}")))
    }
}

impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn send<'a>(&'a self, n: &'a Notification, _attempt: u32) -> SendFuture<'a> {
        Box::pin(async move {
            let msg = self.message(n)?;
            match self.transport.send(msg).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(NotifyError::permanent(format!("smtp: {e}"))),
                Err(e) => Err(NotifyError::transient(format!("smtp: {e}"))),
            }
        })
    }
}
