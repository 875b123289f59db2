package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// staticFile is one embedded file as it is served: its bytes, their
// gzip, and an ETag of their hash.
type staticFile struct {
	ctype string
	plain []byte
	// gz is nil when gzip does not make the file smaller.
	gz   []byte
	etag string
}

// staticFiles serves the embedded css and js under /console/static/,
// compressed once at start: gzip to a browser that accepts it (uPlot's
// 51 KB go as 22 KB), a 304 to one that has the same content
// (If-None-Match), and a day of caching otherwise.
type staticFiles map[string]*staticFile

// loadStatic reads and compresses every file of fsys.
func loadStatic(fsys fs.FS, names []string) (staticFiles, error) {
	out := make(staticFiles, len(names))
	for _, name := range names {
		plain, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("static file %s: %w", name, err)
		}
		sum := sha256.Sum256(plain)
		f := &staticFile{plain: plain, etag: hex.EncodeToString(sum[:16]), ctype: mime.TypeByExtension(path.Ext(name))}
		if f.ctype == "" {
			f.ctype = "application/octet-stream"
		}
		var b bytes.Buffer
		zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if err != nil {
			return nil, fmt.Errorf("gzip %s: %w", name, err)
		}
		if _, err := zw.Write(plain); err != nil {
			return nil, fmt.Errorf("gzip %s: %w", name, err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip %s: %w", name, err)
		}
		if b.Len() < len(plain) {
			f.gz = b.Bytes()
		}
		out[name] = f
	}
	return out, nil
}

// staticNames lists what mergedStatic serves.
func staticNames() ([]string, error) {
	names := []string{"uPlot.iife.min.js", "uPlot.min.css"}
	own, err := fs.ReadDir(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("static files: %w", err)
	}
	for _, e := range own {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func (sf staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := sf[strings.TrimPrefix(r.URL.Path, "/console/static/")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	body, etag := f.plain, `"`+f.etag+`"`
	h := w.Header()
	h.Set("Vary", "Accept-Encoding")
	h.Set("Cache-Control", "public, max-age=86400")
	if f.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		// Each encoding is its own representation: its own strong ETag.
		body, etag = f.gz, `"`+f.etag+`-gz"`
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("ETag", etag)
	if matchesETag(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", f.ctype)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body) // a write error means the browser left
	}
}

// acceptsGzip reads Accept-Encoding (RFC 9110 §12.5.3): gzip or * with a
// quality above zero, unless gzip itself is refused.
func acceptsGzip(header string) bool {
	gz, star := -1.0, -1.0
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "gzip", "x-gzip":
			gz = q
		case "*":
			star = q
		}
	}
	if gz >= 0 {
		return gz > 0
	}
	return star > 0
}

// matchesETag reports whether an If-None-Match names the file's content
// in either encoding (weak comparison, RFC 9110 §13.1.2).
func matchesETag(header, hash string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == `"`+hash+`"` || tag == `"`+hash+`-gz"` {
			return true
		}
	}
	return false
}
