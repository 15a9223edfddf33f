//! Raw-deflate encoder backed by the zlib bundled into this module (the same zlib on
//! every machine, so a rebuild at the far site gives the bytes checked at analysis).

use libz_sys as z;
use std::os::raw::c_int;

unsafe extern "C" fn zalloc(_opaque: z::voidpf, items: z::uInt, size: z::uInt) -> z::voidpf {
    libc::calloc(items as libc::size_t, size as libc::size_t)
}

unsafe extern "C" fn zfree(_opaque: z::voidpf, address: z::voidpf) {
    libc::free(address)
}

pub struct ZlibDeflater {
    strm: Box<z::z_stream>,
    out: Vec<u8>,
    finished: bool,
}

// SAFETY: the z_stream only points into its own heap state (and, during a call, into
// buffers borrowed for that call); it is mutated only through `&mut self`.
unsafe impl Send for ZlibDeflater {}
unsafe impl Sync for ZlibDeflater {}

impl ZlibDeflater {
    /// Raw deflate (no zlib/gzip wrapper) with the given parameters.
    pub fn new(
        level: i32,
        mem_level: i32,
        window_bits: i32,
        strategy: i32,
    ) -> Result<Self, String> {
        if !(0..=9).contains(&level)
            || !(1..=9).contains(&mem_level)
            || !(9..=15).contains(&window_bits)
            || !(0..=4).contains(&strategy)
        {
            return Err(format!(
                "invalid zlib parameters level={level} mem_level={mem_level} \
                 window_bits={window_bits} strategy={strategy}"
            ));
        }
        let mut strm = Box::new(z::z_stream {
            next_in: std::ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: std::ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: std::ptr::null_mut(),
            state: std::ptr::null_mut(),
            zalloc,
            zfree,
            opaque: std::ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        });
        // SAFETY: strm is fully initialised; deflateInit2 sets up its internal state.
        let rc = unsafe {
            z::deflateInit2_(
                strm.as_mut(),
                level as c_int,
                z::Z_DEFLATED,
                -(window_bits as c_int),
                mem_level as c_int,
                strategy as c_int,
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if rc != z::Z_OK {
            return Err(format!("deflateInit2 failed: {rc}"));
        }
        Ok(ZlibDeflater {
            strm,
            out: Vec::with_capacity(1 << 16),
            finished: false,
        })
    }

    fn run(&mut self, input: &[u8], flush: c_int) {
        assert!(!self.finished, "write after finish");
        self.strm.next_in = input.as_ptr() as *mut u8;
        self.strm.avail_in = input.len() as u32;
        loop {
            if self.out.capacity() - self.out.len() < 1 << 15 {
                self.out.reserve(1 << 16);
            }
            let spare = self.out.capacity() - self.out.len();
            // SAFETY: next_out points at `spare` writable bytes of `out`; zlib writes at
            // most avail_out bytes and we only extend the length by what it wrote.
            let rc = unsafe {
                self.strm.next_out = self.out.as_mut_ptr().add(self.out.len());
                self.strm.avail_out = spare as u32;
                let rc = z::deflate(self.strm.as_mut(), flush);
                let written = spare - self.strm.avail_out as usize;
                self.out.set_len(self.out.len() + written);
                rc
            };
            if flush == z::Z_FINISH {
                if rc == z::Z_STREAM_END {
                    self.finished = true;
                    break;
                }
                assert!(
                    rc == z::Z_OK || rc == z::Z_BUF_ERROR,
                    "deflate failed: {rc}"
                );
                continue;
            }
            assert!(
                rc == z::Z_OK || rc == z::Z_BUF_ERROR,
                "deflate failed: {rc}"
            );
            if self.strm.avail_in == 0 && self.strm.avail_out != 0 {
                break;
            }
        }
        self.strm.next_in = std::ptr::null_mut();
        self.strm.avail_in = 0;
    }

    pub fn write(&mut self, input: &[u8]) {
        // avail_in is 32 bits wide.
        for piece in input.chunks(1 << 30) {
            self.run(piece, z::Z_NO_FLUSH);
        }
    }

    pub fn close(&mut self) {
        if !self.finished {
            self.run(&[], z::Z_FINISH);
        }
    }

    pub fn output(&self) -> &[u8] {
        &self.out
    }

    pub fn drain_output(&mut self, n: usize) {
        self.out.drain(..n);
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

impl Drop for ZlibDeflater {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by deflateInit2 in `new`.
        unsafe {
            z::deflateEnd(self.strm.as_mut());
        }
    }
}

/// Version of the bundled zlib.
pub fn version() -> String {
    // SAFETY: zlibVersion returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(z::zlibVersion()) }
        .to_string_lossy()
        .into_owned()
}
