//! A minimal HTTP receiver for alert webhooks: answers every request `200` and keeps
//! the arrival time and body of each. Runs on its own thread for the life of the process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Requests received so far: (arrival, body).
pub type Received = Arc<Mutex<Vec<(Instant, String)>>>;

/// Starts the receiver on 127.0.0.1:0; returns its port and what it received.
pub fn start() -> std::io::Result<(u16, Received)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let received: Received = Arc::default();
    let store = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let store = store.clone();
            std::thread::spawn(move || {
                let _ = serve(stream, &store);
            });
        }
    });
    Ok((port, received))
}

fn serve(stream: TcpStream, store: &Received) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        let mut close = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let at = Instant::now();
        store
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .push((at, String::from_utf8_lossy(&body).into_owned()));
        out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
        if close {
            return Ok(());
        }
    }
}
