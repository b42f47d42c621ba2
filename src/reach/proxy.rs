//! Getting the bytes there: `keyward proxy` connects to the resolved address and pipes its
//! stdin and stdout (ssh's ProxyCommand stream) to it, either directly over TCP or through a
//! jump host with `ssh -W ADDR:PORT JUMP`.
//!
//! Invariants:
//! - stdout carries the SSH stream only; progress and errors go to stderr.
//! - The direct connection has a bounded connect timeout. End of stdin is passed on as a TCP
//!   half-close (`shutdown(Write)`), so the host still sends what it has; the pipe ends when
//!   the host closes its side.
//! - The jump host reaches ssh as one argument after `--`, and only after [`check_jump`]: it
//!   cannot be an option (no leading `-`) nor smuggle a second argument or config line (no
//!   whitespace, control characters or quotes). No shell is involved.
//! - The target of `-W` is an address keyward resolved (IPv6 in brackets), never text from the
//!   command line.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// How long a direct TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// ssh destinations are short; longer text is not one.
const MAX_JUMP_LEN: usize = 512;

/// How the connection is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// TCP to the address.
    Direct(SocketAddr),
    /// `ssh -W target JUMP`.
    Via { jump: String, target: SocketAddr },
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0:?} is not a usable jump host: give an ssh destination such as bastion.example.com or alice@bastion:2222 (no leading '-', spaces, quotes or control characters)")]
    BadJump(String),
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: SocketAddr, error: io::Error },
    #[error("the connection to {addr} failed: {error}")]
    Pipe { addr: SocketAddr, error: io::Error },
}

/// Whether `jump` can be given to ssh as its destination argument.
pub fn check_jump(jump: &str) -> Result<(), ProxyError> {
    let bad = jump.is_empty()
        || jump.len() > MAX_JUMP_LEN
        || jump.starts_with('-')
        || jump
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'\\`$;&|<>(){}*?!#%".contains(c));
    if bad {
        return Err(ProxyError::BadJump(crate::logging::untrusted(jump)));
    }
    Ok(())
}

/// `ADDR:PORT` as ssh's `-W` wants it: an IPv6 address in brackets.
pub fn forward_target(target: SocketAddr) -> String {
    match target.ip() {
        IpAddr::V4(ip) => format!("{ip}:{}", target.port()),
        IpAddr::V6(ip) => format!("[{ip}]:{}", target.port()),
    }
}

/// ssh's arguments (after the program name) for a connection through `jump`.
pub fn via_argv(jump: &str, target: SocketAddr) -> Result<Vec<OsString>, ProxyError> {
    check_jump(jump)?;
    Ok(vec![
        "-W".into(),
        forward_target(target).into(),
        "--".into(),
        jump.into(),
    ])
}

/// A TCP connection to `addr` within `timeout`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ProxyError> {
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|error| ProxyError::Connect { addr, error })?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Copies `input` to the connection and the connection to `output` until the host closes it.
/// End of `input` half-closes the connection. `input` is read on its own thread, which is left
/// behind if the host closes first (a ProxyCommand exits then, and the thread with it).
pub fn pipe<R, W>(stream: TcpStream, mut input: R, mut output: W) -> Result<(), ProxyError>
where
    R: Read + Send + 'static,
    W: Write,
{
    let addr = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let pipe_error = |error| ProxyError::Pipe { addr, error };
    let mut upstream = stream.try_clone().map_err(pipe_error)?;
    let sender = std::thread::spawn(move || {
        let copied = io::copy(&mut input, &mut upstream);
        let _ = upstream.shutdown(Shutdown::Write);
        copied
    });
    let mut downstream = stream;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match downstream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(pipe_error(e)),
        };
        output.write_all(&buf[..n]).map_err(pipe_error)?;
        output.flush().map_err(pipe_error)?;
    }
    if sender.is_finished() {
        if let Ok(Err(e)) = sender.join() {
            if e.kind() != io::ErrorKind::BrokenPipe {
                return Err(pipe_error(e));
            }
        }
    }
    Ok(())
}

/// [`connect`], then [`pipe`]: what another command (e.g. `proxy --open`) calls once it has an
/// address.
pub fn connect_and_pipe<R, W>(
    addr: SocketAddr,
    timeout: Duration,
    input: R,
    output: W,
) -> Result<(), ProxyError>
where
    R: Read + Send + 'static,
    W: Write,
{
    pipe(connect(addr, timeout)?, input, output)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn jump_hosts_that_could_be_options_or_extra_words_are_refused() {
        for good in [
            "bastion",
            "alice@bastion.example.com",
            "bastion:2222",
            "alice@[fd00::1]:22",
        ] {
            check_jump(good).unwrap();
        }
        for bad in [
            "",
            "-oProxyCommand=id",
            "bastion -v",
            "a\tb",
            "a\nHost *",
            "a'b",
            "$(id)",
            "a;b",
        ] {
            assert!(check_jump(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ssh_is_asked_to_forward_to_the_resolved_address_through_the_jump_host() {
        let argv = |jump: &str, target: &str| -> Vec<String> {
            via_argv(jump, target.parse().unwrap())
                .unwrap()
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        assert_eq!(
            argv("alice@bastion", "10.0.0.5:22"),
            ["-W", "10.0.0.5:22", "--", "alice@bastion"]
        );
        assert_eq!(
            argv("bastion", "[fd00::5]:2222"),
            ["-W", "[fd00::5]:2222", "--", "bastion"]
        );
        assert!(via_argv("-F/tmp/x", "10.0.0.5:22".parse().unwrap()).is_err());
    }

    #[test]
    fn bytes_flow_both_ways_and_end_of_input_is_a_half_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The host reads until the client's half-close, then answers and closes.
        let host = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"SSH-2.0-test\r\n").unwrap();
            let mut got = Vec::new();
            conn.read_to_end(&mut got).unwrap();
            conn.write_all(b"got: ").unwrap();
            conn.write_all(&got).unwrap();
        });
        let mut output = Vec::new();
        connect_and_pipe(
            addr,
            CONNECT_TIMEOUT,
            io::Cursor::new(b"hello".to_vec()),
            &mut output,
        )
        .unwrap();
        host.join().unwrap();
        assert_eq!(output, b"SSH-2.0-test\r\ngot: hello");
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let err = connect(addr, Duration::from_secs(2)).unwrap_err();
        assert!(matches!(err, ProxyError::Connect { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot connect to {addr}")),
            "{err}"
        );
    }
}
