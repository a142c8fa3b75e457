//! Layer compression on the writing side: parallel gzip (gzp, pigz-style blocks in one gzip member that
//! any gzip reader decodes), multithreaded zstd, or none.
//!
//! This should fold into `compress.rs` (which owns the decoders) once the encoders being added there on
//! another branch land; it lives here meanwhile to keep the branches from colliding.

use std::io::{self, Write};

use gzp::ZWriter;
use gzp::deflate::Gzip;
use gzp::par::compress::{ParCompress, ParCompressBuilder};

use crate::media_type::Compression;

/// A compressing writer of one of the layer compressions. Call [`Encoder::finish`] at the end.
pub enum Encoder<W: Write + Send + 'static> {
    /// Uncompressed.
    None(W),
    /// Parallel gzip.
    Gzip(ParCompress<'static, Gzip, W>),
    /// zstd with worker threads.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// Worker threads to use: every core, at least one.
fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl<W: Write + Send + 'static> Encoder<W> {
    /// A writer compressing into `inner`. `level` is the gzip (1-9) or zstd (1-22) level; `None` picks
    /// the default (gzip 6, zstd 3). Output is the same whatever the number of threads.
    pub fn new(compression: Compression, level: Option<u32>, inner: W) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Encoder::None(inner),
            Compression::Gzip => {
                let level = level.unwrap_or(6).clamp(1, 9);
                let par = ParCompressBuilder::<Gzip>::new()
                    .num_threads(threads())
                    .map_err(io::Error::other)?
                    .compression_level(gzp::Compression::new(level))
                    .from_writer(inner);
                Encoder::Gzip(par)
            }
            Compression::Zstd => {
                let level = level.unwrap_or(3).clamp(1, 22) as i32;
                let mut z = zstd::stream::write::Encoder::new(inner, level)?;
                // Always at least one worker: zstd's output then does not depend on the worker count.
                z.multithread(threads() as u32)?;
                z.include_checksum(false)?;
                Encoder::Zstd(z)
            }
        })
    }

    /// Writes the compressed stream's end, waits for the worker threads and returns the inner writer
    /// (flushed).
    pub fn finish(self) -> io::Result<W> {
        let mut w = match self {
            Encoder::None(w) => w,
            Encoder::Gzip(mut g) => g.finish().map_err(io::Error::other)?,
            Encoder::Zstd(z) => z.finish()?,
        };
        w.flush()?;
        Ok(w)
    }
}

impl<W: Write + Send + 'static> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
        }
    }
    /// Does nothing until [`Encoder::finish`]: a flush in the middle would end a compressed block early
    /// and make the output depend on when it was called.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
