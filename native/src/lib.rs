//! Native parts of transship: deflate encoders that reproduce known compressors bit for
//! bit (Go's compress/flate, zlib), a verifier that finds which one made a stream, and
//! chunked preflate-rs for the rest, raw-deflate decompressors (one of which also
//! records the stream's transcript) and the transcript's writer and check. Used by
//! `transship.gzip_rebuild`.
//!
//! Every call that does real work releases the GIL.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

pub mod deflate_format;
pub mod goflate;
pub mod hints;
pub mod inflate;
pub mod preflate;
pub mod token_inflate;
pub mod transcript;
pub mod verify;
pub mod zlib_enc;
pub mod zlib_port;

use verify::EncoderSpec;

/// Read-only view of a bytes-like object (bytes, bytearray, memoryview, ...).
///
/// The caller must not resize or modify the object while a call that received it runs
/// (the GIL is released during the work).
fn bytes_of(buf: &PyBuffer<u8>) -> PyResult<&[u8]> {
    if !buf.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "expected a contiguous bytes-like object",
        ));
    }
    // SAFETY: the buffer is C-contiguous, holds len_bytes() bytes of u8 and stays alive
    // (the PyBuffer keeps its export) for the lifetime of the borrow.
    Ok(unsafe { std::slice::from_raw_parts(buf.buf_ptr() as *const u8, buf.len_bytes()) })
}

fn spec_from_py(spec: &Bound<'_, PyAny>) -> PyResult<EncoderSpec> {
    let kind: String = spec.get_item(0)?.extract()?;
    match kind.as_str() {
        "go" => Ok(EncoderSpec::Go {
            level: spec.get_item(1)?.extract()?,
            early_slides: spec.get_item(2)?.extract()?,
        }),
        "zlib" => Ok(EncoderSpec::Zlib {
            level: spec.get_item(1)?.extract()?,
            mem_level: spec.get_item(2)?.extract()?,
            strategy: spec.get_item(3)?.extract()?,
        }),
        other => Err(PyValueError::new_err(format!(
            "unknown encoder kind {other:?}"
        ))),
    }
}

fn spec_to_py(py: Python<'_>, spec: &EncoderSpec) -> PyResult<PyObject> {
    Ok(match spec {
        EncoderSpec::Go {
            level,
            early_slides,
        } => ("go", *level, early_slides.clone())
            .into_pyobject(py)?
            .into_any()
            .unbind(),
        EncoderSpec::Zlib {
            level,
            mem_level,
            strategy,
        } => ("zlib", *level, *mem_level, *strategy)
            .into_pyobject(py)?
            .into_any()
            .unbind(),
    })
}

enum AnyEncoder {
    Go(Box<goflate::GoDeflater>),
    Zlib(zlib_port::ZlibEncoder),
}

/// A raw-deflate encoder described by an encoder spec:
/// `("go", level, early_slides)` or `("zlib", level, mem_level, strategy)`.
#[pyclass(module = "transship._native")]
struct Deflater {
    inner: AnyEncoder,
}

impl AnyEncoder {
    fn write(&mut self, data: &[u8]) {
        match self {
            AnyEncoder::Go(e) => e.write(data),
            AnyEncoder::Zlib(e) => e.write(data),
        }
    }

    fn close(&mut self) {
        match self {
            AnyEncoder::Go(e) => e.close(),
            AnyEncoder::Zlib(e) => e.close(),
        }
    }

    fn output(&self) -> &[u8] {
        match self {
            AnyEncoder::Go(e) => e.output(),
            AnyEncoder::Zlib(e) => e.output(),
        }
    }

    fn drain_output(&mut self, n: usize) {
        match self {
            AnyEncoder::Go(e) => e.drain_output(n),
            AnyEncoder::Zlib(e) => e.drain_output(n),
        }
    }
}

impl Deflater {
    /// The output so far, copied out and cleared rather than taken: the buffer keeps
    /// its capacity, and the next call does not grow a new one (reallocations, page
    /// faults).
    fn take_output<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = PyBytes::new(py, self.inner.output());
        let n = self.inner.output().len();
        self.inner.drain_output(n);
        bytes
    }
}

#[pymethods]
impl Deflater {
    #[new]
    fn new(spec: &Bound<'_, PyAny>) -> PyResult<Self> {
        let inner = match spec_from_py(spec)? {
            EncoderSpec::Go {
                level,
                early_slides,
            } => {
                let mut e = goflate::GoDeflater::new(level).map_err(PyValueError::new_err)?;
                e.set_early_slides(&early_slides);
                AnyEncoder::Go(Box::new(e))
            }
            EncoderSpec::Zlib {
                level,
                mem_level,
                strategy,
            } => AnyEncoder::Zlib(
                zlib_port::ZlibEncoder::new(level, mem_level, 15, strategy)
                    .map_err(PyValueError::new_err)?,
            ),
        };
        Ok(Deflater { inner })
    }

    /// Compresses `data`; returns the compressed bytes ready so far.
    fn compress<'py>(
        &mut self,
        py: Python<'py>,
        data: PyBuffer<u8>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = bytes_of(&data)?;
        py.allow_threads(|| self.inner.write(data));
        Ok(self.take_output(py))
    }

    /// Ends the stream; returns the remaining compressed bytes.
    fn finish<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        py.allow_threads(|| self.inner.close());
        self.take_output(py)
    }
}

/// The two inflaters, as their Python `decompress` uses them.
trait Decompressor: Send {
    fn decompress(&mut self, input: &[u8], max_length: usize) -> Result<usize, String>;
    fn output(&self) -> &[u8];
}

impl Decompressor for inflate::Inflater {
    fn decompress(&mut self, input: &[u8], max_length: usize) -> Result<usize, String> {
        inflate::Inflater::decompress(self, input, max_length)
    }
    fn output(&self) -> &[u8] {
        inflate::Inflater::output(self)
    }
}

impl Decompressor for token_inflate::TokenInflater {
    fn decompress(&mut self, input: &[u8], max_length: usize) -> Result<usize, String> {
        token_inflate::TokenInflater::decompress(self, input, max_length)
    }
    fn output(&self) -> &[u8] {
        token_inflate::TokenInflater::output(self)
    }
}

/// (plain bytes, bytes of `data` used), with the GIL released while decoding.
fn decompress_into_py<'py>(
    inner: &mut impl Decompressor,
    py: Python<'py>,
    data: PyBuffer<u8>,
    max_length: usize,
) -> PyResult<(Bound<'py, PyBytes>, usize)> {
    let data = bytes_of(&data)?;
    let used = py
        .allow_threads(|| inner.decompress(data, max_length))
        .map_err(PyValueError::new_err)?;
    Ok((PyBytes::new(py, inner.output()), used))
}

/// Streaming raw-deflate decompressor (zlib-rs).
#[pyclass(module = "transship._native")]
struct Inflater {
    inner: inflate::Inflater,
}

#[pymethods]
impl Inflater {
    #[new]
    fn new() -> Self {
        Inflater {
            inner: inflate::Inflater::new(),
        }
    }

    /// True once the end of the deflate stream was decoded.
    #[getter]
    fn eof(&self) -> bool {
        self.inner.eof()
    }

    /// Decompresses from `data` until `max_length` plain bytes are out, `data` is used
    /// up or the stream ends. Returns (plain bytes, bytes of `data` used). Raises
    /// ValueError on corrupt data.
    fn decompress<'py>(
        &mut self,
        py: Python<'py>,
        data: PyBuffer<u8>,
        max_length: usize,
    ) -> PyResult<(Bound<'py, PyBytes>, usize)> {
        decompress_into_py(&mut self.inner, py, data, max_length)
    }
}

/// Streaming raw-deflate decompressor that can also record the stream's transcript.
#[pyclass(module = "transship._native")]
struct TokenInflater {
    inner: token_inflate::TokenInflater,
}

#[pymethods]
impl TokenInflater {
    /// `transcript`: `take_transcript` will be called.
    #[new]
    #[pyo3(signature = (transcript=false))]
    fn new(transcript: bool) -> Self {
        let mut inner = token_inflate::TokenInflater::new();
        if transcript {
            inner.record_transcript();
        }
        TokenInflater { inner }
    }

    /// True once the end of the deflate stream was decoded.
    #[getter]
    fn eof(&self) -> bool {
        self.inner.eof()
    }

    /// False once a match was coded in a way no Go or zlib encoder writes.
    #[getter]
    fn canonical(&self) -> bool {
        self.inner.canonical()
    }

    /// As `Inflater.decompress`.
    fn decompress<'py>(
        &mut self,
        py: Python<'py>,
        data: PyBuffer<u8>,
        max_length: usize,
    ) -> PyResult<(Bound<'py, PyBytes>, usize)> {
        decompress_into_py(&mut self.inner, py, data, max_length)
    }

    /// The transcript records (block headers, matches) decoded since the last call,
    /// packed (see transcript.rs); empty unless made with `transcript=True`.
    fn take_transcript<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.take_transcript())
    }
}

/// Checks, as a stream is decoded, that its transcript writes it back bit for bit.
#[pyclass(module = "transship._native")]
struct TranscriptCheck {
    inner: transcript::TranscriptCheck,
}

#[pymethods]
impl TranscriptCheck {
    #[new]
    fn new() -> Self {
        TranscriptCheck {
            inner: transcript::TranscriptCheck::new(),
        }
    }

    /// False once the transcript wrote something else than the stream.
    #[getter]
    fn ok(&self) -> bool {
        self.inner.ok()
    }

    /// The next plain and compressed bytes, and the packed transcript records that the
    /// decoder told with them.
    fn feed(
        &mut self,
        py: Python<'_>,
        plain: PyBuffer<u8>,
        compressed: PyBuffer<u8>,
        packed: PyBuffer<u8>,
    ) -> PyResult<()> {
        let (plain, compressed) = (bytes_of(&plain)?, bytes_of(&compressed)?);
        let packed = bytes_of(&packed)?;
        py.allow_threads(|| self.inner.feed(plain, compressed, packed));
        Ok(())
    }

    /// Ends the stream; True when the transcript wrote exactly the stream.
    fn finish(&mut self, py: Python<'_>) -> bool {
        py.allow_threads(|| self.inner.finish())
    }
}

/// Writes a deflate stream from its transcript and its plain data.
#[pyclass(module = "transship._native")]
struct TranscriptWriter {
    inner: transcript::TranscriptWriter,
}

#[pymethods]
impl TranscriptWriter {
    #[new]
    fn new() -> Self {
        TranscriptWriter {
            inner: transcript::TranscriptWriter::new(),
        }
    }

    /// Every record before this plain position is known.
    #[getter]
    fn horizon(&self) -> u64 {
        self.inner.horizon()
    }

    /// Adds packed records (any cut of the packed transcript). ValueError when damaged.
    fn add(&mut self, py: Python<'_>, packed: PyBuffer<u8>) -> PyResult<()> {
        let packed = bytes_of(&packed)?;
        py.allow_threads(|| self.inner.add(packed))
            .map_err(PyValueError::new_err)
    }

    /// Every record has been added.
    fn end_records(&mut self) {
        self.inner.end_records();
    }

    /// The stream bytes for the next plain bytes (whose records must be known).
    /// ValueError when the transcript does not fit the data.
    fn write<'py>(
        &mut self,
        py: Python<'py>,
        plain: PyBuffer<u8>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let plain = bytes_of(&plain)?;
        py.allow_threads(|| self.inner.write(plain))
            .map_err(PyValueError::new_err)?;
        Ok(self.take_output(py))
    }

    /// The stream's last bytes, after the last plain byte. ValueError when the
    /// transcript does not end there.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.inner.finish().map_err(PyValueError::new_err)?;
        Ok(self.take_output(py))
    }
}

impl TranscriptWriter {
    fn take_output<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let out = PyBytes::new(py, self.inner.output());
        let n = self.inner.output().len();
        self.inner.consume(n);
        out
    }
}

/// Runs candidate encoders over a stream's plain data and compares their output with
/// the stream's original compressed bytes.
#[pyclass(module = "transship._native")]
struct Verifier {
    inner: verify::Verifier,
}

#[pymethods]
impl Verifier {
    #[new]
    fn new(specs: Vec<Bound<'_, PyAny>>) -> PyResult<Self> {
        let specs = specs
            .iter()
            .map(spec_from_py)
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Verifier {
            inner: verify::Verifier::new(&specs).map_err(PyValueError::new_err)?,
        })
    }

    /// Number of candidates still matching the original.
    #[getter]
    fn alive(&self) -> usize {
        self.inner.alive()
    }

    /// Keeps only the first `n` still-matching candidates, in the order given.
    fn retain_best(&mut self, n: usize) {
        self.inner.retain_best(n);
    }

    /// Feeds the next plain bytes and the next original compressed bytes.
    fn feed(
        &mut self,
        py: Python<'_>,
        plain: PyBuffer<u8>,
        compressed: PyBuffer<u8>,
    ) -> PyResult<()> {
        let (plain, compressed) = (bytes_of(&plain)?, bytes_of(&compressed)?);
        py.allow_threads(|| self.inner.feed(plain, compressed));
        Ok(())
    }

    /// Ends the stream; returns the specs of the encoders that reproduce it exactly.
    fn finish(&mut self, py: Python<'_>) -> PyResult<Vec<PyObject>> {
        let ok = py.allow_threads(|| self.inner.finish());
        ok.iter().map(|s| spec_to_py(py, s)).collect()
    }
}

/// Splits a raw deflate stream made by any encoder into chunks of (plain length,
/// corrections) with preflate-rs. Checks each chunk's rebuild as it goes.
#[pyclass(module = "transship._native")]
struct PreflateSplitter {
    inner: preflate::PreflateSplitter,
}

#[pymethods]
impl PreflateSplitter {
    #[new]
    fn new() -> Self {
        PreflateSplitter {
            inner: preflate::PreflateSplitter::new(),
        }
    }

    /// Feeds the next compressed bytes. Raises ValueError when preflate cannot do it.
    fn feed(&mut self, py: Python<'_>, compressed: PyBuffer<u8>) -> PyResult<()> {
        let compressed = bytes_of(&compressed)?;
        py.allow_threads(|| self.inner.feed(compressed))
            .map_err(PyValueError::new_err)
    }

    /// Ends the stream. Raises ValueError when it is incomplete or not handled.
    fn finish(&mut self, py: Python<'_>) -> PyResult<()> {
        py.allow_threads(|| self.inner.finish())
            .map_err(PyValueError::new_err)
    }

    /// Takes the chunks finished so far as (plain length, corrections) pairs.
    fn take_chunks<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<(u64, Bound<'py, PyBytes>)>> {
        Ok(std::mem::take(&mut self.inner.chunks)
            .into_iter()
            .map(|(n, c)| (n, PyBytes::new(py, &c)))
            .collect())
    }
}

/// Rebuilds the chunks made by PreflateSplitter, in order.
#[pyclass(module = "transship._native")]
struct PreflateRebuilder {
    inner: preflate::PreflateRebuilder,
}

#[pymethods]
impl PreflateRebuilder {
    #[new]
    fn new() -> Self {
        PreflateRebuilder {
            inner: preflate::PreflateRebuilder::new(),
        }
    }

    /// Compressed bytes of one chunk from its plain data and corrections.
    fn rebuild_chunk<'py>(
        &mut self,
        py: Python<'py>,
        plain: PyBuffer<u8>,
        corrections: PyBuffer<u8>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (plain, corrections) = (bytes_of(&plain)?, bytes_of(&corrections)?);
        let out = py
            .allow_threads(|| self.inner.rebuild_chunk(plain, corrections))
            .map_err(PyValueError::new_err)?;
        Ok(PyBytes::new(py, &out))
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Deflater>()?;
    m.add_class::<Inflater>()?;
    m.add_class::<TokenInflater>()?;
    m.add_class::<Verifier>()?;
    m.add_class::<TranscriptCheck>()?;
    m.add_class::<TranscriptWriter>()?;
    m.add_class::<PreflateSplitter>()?;
    m.add_class::<PreflateRebuilder>()?;
    m.add("ZLIB_VERSION", zlib_enc::version())?;
    Ok(())
}
