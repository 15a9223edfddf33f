// gogzip compresses data with Go's standard compress/gzip, the way Docker,
// BuildKit, containerd and go-containerregistry push layers. It produces
// reference inputs for the bit-exact gzip reconstruction benchmarks and tests.
//
// Usage:
//
//	gogzip [-level N] [-bufsize N] [-o out.gz] [input]      gzip a file (or stdin)
//	gogzip -tar [-level N] -o out.tar.gz path...             tar paths straight into gzip
//
// -bufsize sets the size of the writes handed to the gzip writer (0: io.Copy's
// 32 KiB). -tar writes a PAX tar through archive/tar directly into the gzip
// writer, so the compressor sees 512-byte header writes mixed with file data,
// as in a daemon's layer export.
package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

func main() {
	level := flag.Int("level", gzip.DefaultCompression, "compression level: -2 (HuffmanOnly), -1 (default), 0..9")
	bufSize := flag.Int("bufsize", 0, "size of each write into the gzip writer (0 = io.Copy's 32 KiB)")
	out := flag.String("o", "-", "output file (- for stdout)")
	tarMode := flag.Bool("tar", false, "tar the given paths straight into the gzip writer")
	flag.Parse()

	if err := run(*level, *bufSize, *out, *tarMode, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "gogzip:", err)
		os.Exit(1)
	}
}

func run(level, bufSize int, out string, tarMode bool, args []string) error {
	var dst io.Writer = os.Stdout
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		dst = f
	}
	bw := bufio.NewWriterSize(dst, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, level)
	if err != nil {
		return err
	}
	if tarMode {
		err = writeTar(zw, args)
	} else {
		err = copyInput(zw, bufSize, args)
	}
	if err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func copyInput(zw io.Writer, bufSize int, args []string) error {
	var src io.Reader = os.Stdin
	if len(args) > 1 {
		return fmt.Errorf("at most one input file")
	}
	if len(args) == 1 {
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	}
	// Hide WriterTo/ReaderFrom so the write sizes are exactly what we ask for.
	src = struct{ io.Reader }{src}
	if bufSize <= 0 {
		_, err := io.Copy(struct{ io.Writer }{zw}, src)
		return err
	}
	buf := make([]byte, bufSize)
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if _, werr := zw.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func writeTar(zw io.Writer, roots []string) error {
	tw := tar.NewWriter(zw)
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			link := ""
			if info.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(path); err != nil {
					return err
				}
			}
			hdr, err := tar.FileInfoHeader(info, link)
			if err != nil {
				return err
			}
			hdr.Name = filepath.ToSlash(path)
			hdr.Format = tar.FormatPAX
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if !info.Mode().IsRegular() {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, struct{ io.Reader }{f})
			return err
		})
		if err != nil {
			return err
		}
	}
	return tw.Close()
}
