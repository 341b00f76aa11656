//! Length-prefixed frames over any blocking `Read`/`Write`.

use std::io::{self, Read, Write};

use zeroize::Zeroizing;

/// The largest frame body accepted or sent: far above any message of this protocol (a
/// device list of 8 entries is a few hundred bytes), small enough that a connection can
/// never make a peer hold much memory.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// The largest frame a root peer may send: a token seed file (`mfa admin tokens import`,
/// at most 16 MiB) and its envelope. Only the daemon applies it, and only to root's
/// connections (see [`read_frame_limited`]).
pub const MAX_ROOT_MESSAGE: usize = 17 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection before the first byte of a frame.
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection, or its deadline passed, in the middle of a frame.
    #[error("truncated frame")]
    Truncated,
    /// The announced length is over [`MAX_MESSAGE`]; nothing was allocated for it.
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(u64),
    #[error("empty frame")]
    Empty,
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// Whether the error is a read or write timeout (the socket's deadline passed).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

/// Reads one frame's body. The body may hold a code, so it is zeroed when dropped.
pub fn read_frame(reader: &mut impl Read) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    read_frame_limited(reader, MAX_MESSAGE)
}

/// [`read_frame`] with another size limit (at most [`MAX_ROOT_MESSAGE`]).
pub fn read_frame_limited(
    reader: &mut impl Read,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let limit = limit.min(MAX_ROOT_MESSAGE);
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match reader.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(len);
    let size = usize::try_from(len).map_err(|_| FrameError::TooLarge(u64::from(len)))?;
    if size > limit {
        return Err(FrameError::TooLarge(u64::from(len)));
    }
    if size == 0 {
        return Err(FrameError::Empty);
    }
    let mut body = Zeroizing::new(vec![0u8; size]);
    let mut got = 0;
    while got < size {
        match reader.read(&mut body[got..]) {
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(body)
}

/// Writes one frame (length and body in one buffer, so one `write` usually sends it).
pub fn write_frame(writer: &mut impl Write, body: &[u8]) -> Result<(), FrameError> {
    if body.len() > MAX_ROOT_MESSAGE {
        return Err(FrameError::TooLarge(body.len() as u64));
    }
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(body.len() as u64))?;
    let mut frame = Zeroizing::new(Vec::with_capacity(4 + body.len()));
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    writer.write_all(&frame)?;
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        assert_eq!(&buf[..4], &[0, 0, 0, 5]);
        let body = read_frame(&mut &buf[..]).unwrap();
        assert_eq!(&body[..], b"hello");
    }

    /// A reader that fails the test if more than the length prefix is read: an oversize
    /// frame must be refused from its length alone.
    struct LengthOnly<'a>(&'a [u8], usize);
    impl Read for LengthOnly<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            assert!(
                out.len() <= 4,
                "asked for {} bytes after the length",
                out.len()
            );
            let n = out.len().min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn oversize_refused_before_reading_or_allocating() {
        for len in [MAX_MESSAGE as u32 + 1, u32::MAX] {
            let prefix = len.to_be_bytes();
            let mut r = LengthOnly(&prefix, 0);
            match read_frame(&mut r) {
                Err(FrameError::TooLarge(n)) => assert_eq!(n, u64::from(len)),
                other => panic!("{other:?}"),
            }
            assert_eq!(r.1, 4);
        }
        let big = vec![1u8; MAX_ROOT_MESSAGE + 1];
        assert!(matches!(
            write_frame(&mut Vec::new(), &big),
            Err(FrameError::TooLarge(_))
        ));
        let mut buf = Vec::new();
        write_frame(&mut buf, &big[..MAX_MESSAGE]).unwrap();
        assert_eq!(read_frame(&mut &buf[..]).unwrap().len(), MAX_MESSAGE);
        // A root-sized frame is refused by the ordinary limit, taken by the root one.
        let mut buf = Vec::new();
        write_frame(&mut buf, &big[..MAX_MESSAGE + 1]).unwrap();
        assert!(matches!(
            read_frame(&mut &buf[..]),
            Err(FrameError::TooLarge(_))
        ));
        assert_eq!(
            read_frame_limited(&mut &buf[..], MAX_ROOT_MESSAGE)
                .unwrap()
                .len(),
            MAX_MESSAGE + 1
        );
    }

    #[test]
    fn the_limits_are_64_kib_and_17_mib() {
        // The sizes the protocol promises, written out: a 64 KiB frame is ordinary, a
        // 17 MiB one (a 16 MiB seed file and its envelope) only for root's connections.
        let big = vec![7u8; 17 * 1024 * 1024 + 1];
        let framed = |body: &[u8]| {
            let mut buf = Vec::new();
            write_frame(&mut buf, body).unwrap();
            buf
        };
        assert_eq!(
            read_frame(&mut &framed(&big[..65_536])[..]).unwrap().len(),
            65_536
        );
        assert!(matches!(
            read_frame(&mut &framed(&big[..65_537])[..]),
            Err(FrameError::TooLarge(65_537))
        ));
        let root = framed(&big[..17 * 1024 * 1024]);
        assert_eq!(
            read_frame_limited(&mut &root[..], usize::MAX)
                .unwrap()
                .len(),
            17 * 1024 * 1024
        );
        assert!(matches!(
            write_frame(&mut Vec::new(), &big),
            Err(FrameError::TooLarge(_))
        ));
        let mut over = (17u32 * 1024 * 1024 + 1).to_be_bytes().to_vec();
        over.extend_from_slice(&big);
        assert!(matches!(
            read_frame_limited(&mut &over[..], usize::MAX),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn is_timeout_only_for_a_passed_deadline() {
        for kind in [io::ErrorKind::WouldBlock, io::ErrorKind::TimedOut] {
            assert!(FrameError::Io(kind.into()).is_timeout(), "{kind:?}");
        }
        for e in [
            FrameError::Io(io::ErrorKind::ConnectionReset.into()),
            FrameError::Truncated,
            FrameError::Closed,
        ] {
            assert!(!e.is_timeout(), "{e:?}");
        }
    }

    /// Hands out `data` one byte a call, failing once with `kind` after `fail_at` bytes.
    struct Flaky<'a> {
        data: &'a [u8],
        fail_at: usize,
        kind: Option<io::ErrorKind>,
        read: usize,
    }
    impl Read for Flaky<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.read == self.fail_at
                && let Some(kind) = self.kind.take()
            {
                return Err(kind.into());
            }
            let n = out.len().min(self.data.len()).min(1);
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.read += n;
            Ok(n)
        }
    }

    #[test]
    fn an_interrupted_read_is_retried_and_any_other_error_ends_the_frame() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        let read_failing = |fail_at, kind| {
            read_frame(&mut Flaky {
                data: &buf,
                fail_at,
                kind: Some(kind),
                read: 0,
            })
        };
        // In the length (after 2 bytes) and in the body (after 6).
        for at in [2, 6] {
            assert_eq!(
                &read_failing(at, io::ErrorKind::Interrupted).unwrap()[..],
                b"hello",
                "interrupted after {at} bytes"
            );
            assert!(
                matches!(
                    read_failing(at, io::ErrorKind::ConnectionReset),
                    Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset
                ),
                "reset after {at} bytes"
            );
        }
    }

    #[test]
    fn truncated_and_empty() {
        assert!(matches!(read_frame(&mut &b""[..]), Err(FrameError::Closed)));
        assert!(matches!(
            read_frame(&mut &b"\0\0"[..]),
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read_frame(&mut &b"\0\0\0\x05abc"[..]),
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read_frame(&mut &b"\0\0\0\0"[..]),
            Err(FrameError::Empty)
        ));
    }
}
